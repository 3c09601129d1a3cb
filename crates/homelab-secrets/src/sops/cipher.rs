//! One value's encryption as sops does it: AES-256-GCM with a 32-byte IV and the key path as
//! associated data, `ENC[AES256_GCM,data:..,iv:..,tag:..,type:..]`; and the bytes each value
//! contributes to the MAC. It must not accept a value whose tag does not verify.

use aes_gcm::AesGcm;
use aes_gcm::aead::consts::{U12, U32};
use aes_gcm::aead::generic_array::GenericArray;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::aes::Aes256;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use rand::RngCore;
use rand::rngs::OsRng;
use zeroize::Zeroizing;

use crate::timefmt::{parse_rfc3339, parse_yaml_timestamp};
use crate::yaml::{Value, go_float_text};

type Aes256Gcm32 = AesGcm<Aes256, U32>;
type Aes256Gcm12 = AesGcm<Aes256, U12>;

/// sops's IV length.
const IV_LEN: usize = 32;
const TAG_LEN: usize = 16;

/// The 256-bit key that encrypts every value of a file; zeroed on drop, never printed.
#[derive(Clone)]
pub(crate) struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

impl DataKey {
    pub(crate) fn generate() -> Self {
        let mut key = Zeroizing::new([0u8; 32]);
        OsRng.fill_bytes(&mut key[..]);
        DataKey(key)
    }

    pub(crate) fn from_slice(bytes: &[u8]) -> Option<Self> {
        let array: [u8; 32] = bytes.try_into().ok()?;
        Some(DataKey(Zeroizing::new(array)))
    }

    pub(crate) fn bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

/// Why a value could not be decrypted.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CipherFailure {
    Malformed(String),
    Authentication,
}

/// The plaintext bytes and sops type name of a scalar.
fn plaintext_of(v: &Value) -> Option<(Zeroizing<Vec<u8>>, &'static str)> {
    let (bytes, ty) = match v {
        Value::Str(s) => (s.as_bytes().to_vec(), "str"),
        Value::Int(i) => (i.to_string().into_bytes(), "int"),
        Value::Float(f) => (go_float_text(*f).into_bytes(), "float"),
        // sops writes booleans title-cased, as its Python predecessor did.
        Value::Bool(b) => (
            (if *b { "True" } else { "False" }).as_bytes().to_vec(),
            "bool",
        ),
        Value::Bytes(b) => (b.clone(), "bytes"),
        Value::Timestamp(t) => (timestamp_text(t)?.into_bytes(), "time"),
        Value::Comment(c) => (c.as_bytes().to_vec(), "comment"),
        Value::Null | Value::Seq(_) | Value::Map(_) => return None,
    };
    Some((Zeroizing::new(bytes), ty))
}

/// Go's `time.Time.MarshalText` for a YAML timestamp.
fn timestamp_text(t: &str) -> Option<String> {
    parse_yaml_timestamp(t).map(|ts| ts.to_rfc3339_nano())
}

/// Encrypts a scalar; empty strings stay empty and unencrypted, as sops leaves them.
pub(crate) fn encrypt_scalar(v: &Value, key: &DataKey, aad: &str) -> Result<String, String> {
    let (plain, ty) = plaintext_of(v).ok_or_else(|| "not a scalar".to_owned())?;
    if plain.is_empty() && matches!(ty, "str" | "bytes" | "comment") {
        return Ok(String::new());
    }
    let mut iv = [0u8; IV_LEN];
    OsRng.fill_bytes(&mut iv);
    let cipher = Aes256Gcm32::new(GenericArray::from_slice(key.bytes()));
    let sealed = cipher
        .encrypt(
            GenericArray::from_slice(&iv),
            Payload {
                msg: &plain,
                aad: aad.as_bytes(),
            },
        )
        .map_err(|_| "AES-GCM encryption failed".to_owned())?;
    let (data, tag) = sealed.split_at(sealed.len() - TAG_LEN);
    Ok(format!(
        "ENC[AES256_GCM,data:{},iv:{},tag:{},type:{ty}]",
        B64.encode(data),
        B64.encode(iv),
        B64.encode(tag)
    ))
}

struct EncParts {
    data: Vec<u8>,
    iv: Vec<u8>,
    tag: Vec<u8>,
    ty: String,
}

fn parse_enc(text: &str) -> Result<EncParts, CipherFailure> {
    let malformed = |why: &str| CipherFailure::Malformed(why.to_owned());
    let inner = text
        .strip_prefix("ENC[AES256_GCM,")
        .and_then(|t| t.strip_suffix(']'))
        .ok_or_else(|| malformed("it does not have the form ENC[AES256_GCM,...]"))?;
    let mut fields = inner.split(',');
    let mut field = |name: &str| -> Result<String, CipherFailure> {
        fields
            .next()
            .and_then(|f| f.strip_prefix(name))
            .and_then(|f| f.strip_prefix(':'))
            .map(str::to_owned)
            .ok_or_else(|| CipherFailure::Malformed(format!("missing `{name}:` field")))
    };
    let data = field("data")?;
    let iv = field("iv")?;
    let tag = field("tag")?;
    let ty = field("type")?;
    if fields.next().is_some() {
        return Err(malformed("unexpected fields after `type`"));
    }
    let decode = |name: &str, s: &str| {
        B64.decode(s)
            .map_err(|e| CipherFailure::Malformed(format!("`{name}` is not base64: {e}")))
    };
    Ok(EncParts {
        data: decode("data", &data)?,
        iv: decode("iv", &iv)?,
        tag: decode("tag", &tag)?,
        ty,
    })
}

/// Decrypts an `ENC[...]` value to its typed plaintext.
pub(crate) fn decrypt_scalar(text: &str, key: &DataKey, aad: &str) -> Result<Value, CipherFailure> {
    let parts = parse_enc(text)?;
    if parts.tag.len() != TAG_LEN {
        return Err(CipherFailure::Malformed(format!(
            "the tag is {} bytes, expected {TAG_LEN}",
            parts.tag.len()
        )));
    }
    let mut sealed = parts.data;
    sealed.extend_from_slice(&parts.tag);
    let payload = Payload {
        msg: &sealed,
        aad: aad.as_bytes(),
    };
    let plain = Zeroizing::new(
        match parts.iv.len() {
            32 => Aes256Gcm32::new(GenericArray::from_slice(key.bytes()))
                .decrypt(GenericArray::from_slice(&parts.iv), payload),
            12 => Aes256Gcm12::new(GenericArray::from_slice(key.bytes()))
                .decrypt(GenericArray::from_slice(&parts.iv), payload),
            n => {
                return Err(CipherFailure::Malformed(format!(
                    "the IV is {n} bytes (expected 32)"
                )));
            }
        }
        .map_err(|_| CipherFailure::Authentication)?,
    );
    typed(&plain, &parts.ty)
}

fn typed(plain: &[u8], ty: &str) -> Result<Value, CipherFailure> {
    let bad = |what: &str| CipherFailure::Malformed(format!("the decrypted {what} is not valid"));
    let text = || std::str::from_utf8(plain).map_err(|_| bad("text"));
    Ok(match ty {
        "str" => Value::Str(text()?.to_owned()),
        "int" | "int64" => Value::Int(text()?.parse().map_err(|_| bad("integer"))?),
        "float" => Value::Float(crate::yaml::parse_go_float(text()?).ok_or_else(|| bad("float"))?),
        "bool" => Value::Bool(parse_go_bool(text()?).ok_or_else(|| bad("boolean"))?),
        "bytes" => Value::Bytes(plain.to_vec()),
        "time" => {
            let t = text()?;
            let ts = parse_rfc3339(t).ok_or_else(|| bad("timestamp"))?;
            Value::Timestamp(ts.to_rfc3339_nano())
        }
        "comment" => Value::Comment(text()?.to_owned()),
        other => {
            return Err(CipherFailure::Malformed(format!(
                "unknown value type `{other}`"
            )));
        }
    })
}

/// Go's `strconv.ParseBool`.
fn parse_go_bool(s: &str) -> Option<bool> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Some(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Some(false),
        _ => None,
    }
}

/// The bytes a scalar contributes to the MAC (sops's `ToBytes`).
pub(crate) fn mac_bytes(v: &Value) -> Zeroizing<Vec<u8>> {
    match v {
        Value::Timestamp(t) => {
            Zeroizing::new(timestamp_text(t).unwrap_or_else(|| t.clone()).into_bytes())
        }
        other => plaintext_of(other)
            .map(|(bytes, _)| bytes)
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_each_type_with_its_type_tag() {
        let key = DataKey::generate();
        let cases = [
            (Value::Str("p@ss: w0rd\n".into()), "type:str]"),
            (Value::Int(-12), "type:int]"),
            (Value::Float(1234.56789), "type:float]"),
            (Value::Bool(true), "type:bool]"),
            (Value::Bytes(vec![0, 255]), "type:bytes]"),
            (
                Value::Timestamp("2024-01-02T03:04:05Z".into()),
                "type:time]",
            ),
        ];
        for (value, suffix) in cases {
            let enc = encrypt_scalar(&value, &key, "a:b:").unwrap();
            assert!(enc.starts_with("ENC[AES256_GCM,data:"), "{enc}");
            assert!(enc.ends_with(suffix), "{enc}");
            let parts = parse_enc(&enc).unwrap();
            assert_eq!(parts.iv.len(), 32);
            assert_eq!(decrypt_scalar(&enc, &key, "a:b:").unwrap(), value);
        }
    }

    #[test]
    fn wrong_path_wrong_key_or_tampering_fail_authentication() {
        let key = DataKey::generate();
        let enc = encrypt_scalar(&Value::Str("secret".into()), &key, "a:").unwrap();
        assert_eq!(
            decrypt_scalar(&enc, &key, "b:"),
            Err(CipherFailure::Authentication)
        );
        assert_eq!(
            decrypt_scalar(&enc, &DataKey::generate(), "a:"),
            Err(CipherFailure::Authentication)
        );
        let data_start = enc.find("data:").unwrap() + 5;
        let mut tampered = enc.clone().into_bytes();
        tampered[data_start] = if tampered[data_start] == b'A' {
            b'B'
        } else {
            b'A'
        };
        let tampered = String::from_utf8(tampered).unwrap();
        assert_eq!(
            decrypt_scalar(&tampered, &key, "a:"),
            Err(CipherFailure::Authentication)
        );
        assert!(matches!(
            decrypt_scalar("ENC[AES256_GCM,data:abc]", &key, "a:"),
            Err(CipherFailure::Malformed(_))
        ));
    }

    #[test]
    fn empty_strings_stay_empty_and_bools_mac_title_case() {
        let key = DataKey::generate();
        assert_eq!(
            encrypt_scalar(&Value::Str(String::new()), &key, "a:").unwrap(),
            ""
        );
        assert_eq!(&mac_bytes(&Value::Bool(false))[..], b"False");
        assert_eq!(&mac_bytes(&Value::Float(1.0))[..], b"1");
        assert_eq!(
            &mac_bytes(&Value::Timestamp("2024-01-02".into()))[..],
            b"2024-01-02T00:00:00Z"
        );
    }
}
