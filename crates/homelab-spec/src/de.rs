//! A serde deserializer over the positioned YAML tree that records every structural problem
//! (unknown key, wrong type, unknown choice) and keeps going, so one run reports them all; it
//! checks shapes only, never meanings (that is `validate`'s job).

use std::cell::RefCell;
use std::fmt;

use schemars::JsonSchema;
use serde::Deserialize;
use serde::de::{
    self, DeserializeSeed, Deserializer, EnumAccess, IntoDeserializer, MapAccess, SeqAccess,
    VariantAccess, Visitor,
};

use crate::diag::{Diagnostic, Span};
use crate::raw::{FLAG_OR_MAPPING, REPORTED_MARK, SCALAR_OR_STRUCT, SECRET_REF};
use crate::yaml::{Node, Resolved, Value};

/// Whether a key name suggests its value is a secret, so diagnostics must not repeat it.
pub fn looks_secret(key: &str) -> bool {
    const WORDS: &[&[u8]] = &[
        b"pass",
        b"pasw",
        b"pwd",
        b"secret",
        b"token",
        b"apikey",
        b"privatekey",
        b"credential",
        b"encryptionkey",
        b"userkey",
    ];
    // Lowercase without `_` and `-` into a buffer on the stack: this runs for every key of
    // every spec, so it must not allocate.
    let mut buf = [0u8; 128];
    let mut len = 0;
    for b in key.bytes().filter(|b| !matches!(b, b'_' | b'-')) {
        if len == buf.len() {
            break;
        }
        buf[len] = b.to_ascii_lowercase();
        len += 1;
    }
    let k = &buf[..len];
    WORDS
        .iter()
        .any(|w| k.windows(w.len()).any(|window| window == *w))
}

/// A value with the place in the source it came from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spanned<T> {
    pub value: T,
    pub span: Span,
}

impl<T> Spanned<T> {
    pub fn new(value: T, span: Span) -> Self {
        Spanned { value, span }
    }
}

impl<T> std::ops::Deref for Spanned<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

const SPANNED: &str = "$homelab::Spanned";
const SPANNED_FIELDS: &[&str] = &["$start", "$end", "$value"];

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Spanned<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<T>(std::marker::PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for V<T> {
            type Value = Spanned<T>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a value with a source position")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Spanned<T>, A::Error> {
                let mut start = 0usize;
                let mut end = 0usize;
                let mut value = None;
                while let Some(key) = map.next_key::<String>()? {
                    match key.as_str() {
                        "$start" => start = map.next_value()?,
                        "$end" => end = map.next_value()?,
                        _ => value = Some(map.next_value()?),
                    }
                }
                let value = value.ok_or_else(|| de::Error::custom("spanned value missing"))?;
                Ok(Spanned {
                    value,
                    span: Span::new(start, end),
                })
            }
        }
        d.deserialize_struct(SPANNED, SPANNED_FIELDS, V(std::marker::PhantomData))
    }
}

impl<T: JsonSchema> JsonSchema for Spanned<T> {
    fn inline_schema() -> bool {
        T::inline_schema()
    }
    fn schema_name() -> std::borrow::Cow<'static, str> {
        T::schema_name()
    }
    fn schema_id() -> std::borrow::Cow<'static, str> {
        T::schema_id()
    }
    fn json_schema(generator: &mut schemars::SchemaGenerator) -> schemars::Schema {
        T::json_schema(generator)
    }
}

/// A YAML value taken as written, untyped, with every position kept: what the spec passes
/// through without knowing its shape (Helm chart values). Read only by this module's
/// deserializer, which hands the node over field by field.
#[derive(Debug, Clone, PartialEq)]
pub struct YamlValue(pub Node);

impl YamlValue {
    /// The value with scalars resolved by the YAML 1.2 core schema.
    pub fn to_json(&self) -> serde_json::Value {
        self.0.to_json()
    }

    pub fn span(&self) -> Span {
        self.0.span
    }
}

impl serde::Serialize for YamlValue {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.to_json().serialize(s)
    }
}

impl JsonSchema for YamlValue {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "YamlMapping".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({"type": "object"})
    }
}

const YAML_NODE: &str = "$homelab::Node";
const NODE_FIELDS: &[&str] = &["$start", "$end", "$text", "$quoted", "$items", "$entries"];

impl<'de> Deserialize<'de> for YamlValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_struct(YAML_NODE, NODE_FIELDS, NodeVisitor)
            .map(YamlValue)
    }
}

struct NodeVisitor;

impl<'de> Visitor<'de> for NodeVisitor {
    type Value = Node;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a YAML value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Node, A::Error> {
        let (mut start, mut end) = (0usize, 0usize);
        let mut text = None;
        let mut quoted = false;
        let mut value = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "$start" => start = map.next_value()?,
                "$end" => end = map.next_value()?,
                "$text" => text = Some(map.next_value::<String>()?),
                "$quoted" => quoted = map.next_value()?,
                "$items" => {
                    let items: Vec<YamlValue> = map.next_value()?;
                    value = Some(Value::Seq(items.into_iter().map(|v| v.0).collect()));
                }
                "$entries" => {
                    let entries: Vec<(YamlValue, YamlValue)> = map.next_value()?;
                    value = Some(Value::Map(
                        entries.into_iter().map(|(k, v)| (k.0, v.0)).collect(),
                    ));
                }
                _ => {
                    map.next_value::<de::IgnoredAny>()?;
                }
            }
        }
        let value = match (value, text) {
            (Some(v), _) => v,
            (None, Some(text)) => Value::Scalar { text, quoted },
            (None, None) => return Err(de::Error::custom("a YAML node without a value")),
        };
        Ok(Node {
            value,
            span: Span::new(start, end),
        })
    }
}

/// Hands a node to [`NodeVisitor`] as a map of its parts.
struct NodeFields<'a> {
    node: &'a Node,
    keys: &'static [&'static str],
    step: usize,
}

impl<'a> NodeFields<'a> {
    fn new(node: &'a Node) -> Self {
        let keys: &'static [&'static str] = match node.value {
            Value::Scalar { .. } => &["$start", "$end", "$text", "$quoted"],
            Value::Seq(_) => &["$start", "$end", "$items"],
            Value::Map(_) => &["$start", "$end", "$entries"],
        };
        NodeFields {
            node,
            keys,
            step: 0,
        }
    }
}

impl<'de> MapAccess<'de> for NodeFields<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(key) = self.keys.get(self.step) else {
            return Ok(None);
        };
        seed.deserialize((*key).into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let key = self.keys[self.step];
        self.step += 1;
        let node = self.node;
        match (key, &node.value) {
            ("$start", _) => seed.deserialize((node.span.start as u64).into_deserializer()),
            ("$end", _) => seed.deserialize((node.span.end as u64).into_deserializer()),
            ("$text", Value::Scalar { text, .. }) => {
                seed.deserialize(text.as_str().into_deserializer())
            }
            ("$quoted", Value::Scalar { quoted, .. }) => {
                seed.deserialize((*quoted).into_deserializer())
            }
            ("$items", Value::Seq(items)) => seed.deserialize(NodesDe::Items(items)),
            ("$entries", Value::Map(entries)) => seed.deserialize(NodesDe::Entries(entries)),
            _ => Err(de::Error::custom("a YAML node read out of order")),
        }
    }
}

/// The children of a node (or one node, or one key and value) as serde sequences.
#[derive(Clone, Copy)]
enum NodesDe<'a> {
    Items(&'a [Node]),
    Entries(&'a [(Node, Node)]),
    Pair(&'a (Node, Node)),
    One(&'a Node),
}

impl<'de> Deserializer<'de> for NodesDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self {
            NodesDe::One(node) => visitor.visit_map(NodeFields::new(node)),
            seq => visitor.visit_seq(NodesSeq { de: seq, index: 0 }),
        }
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map struct enum
        identifier ignored_any
    }
}

struct NodesSeq<'a> {
    de: NodesDe<'a>,
    index: usize,
}

impl<'de> SeqAccess<'de> for NodesSeq<'_> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let i = self.index;
        self.index += 1;
        let next = match self.de {
            NodesDe::Items(items) => items.get(i).map(NodesDe::One),
            NodesDe::Entries(entries) => entries.get(i).map(NodesDe::Pair),
            NodesDe::Pair((k, v)) => match i {
                0 => Some(NodesDe::One(k)),
                1 => Some(NodesDe::One(v)),
                _ => None,
            },
            NodesDe::One(_) => None,
        };
        next.map(|de| seed.deserialize(de)).transpose()
    }
}

/// An error that has already been recorded as a diagnostic (or a serde-internal one).
#[derive(Debug)]
pub struct DeError {
    message: String,
    recorded: bool,
}

impl fmt::Display for DeError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DeError {}

impl de::Error for DeError {
    fn custom<T: fmt::Display>(msg: T) -> Self {
        DeError {
            message: msg.to_string(),
            recorded: false,
        }
    }
}

/// Deserializes `T` from `node`, returning it with every structural problem found on the way.
pub fn from_node<'de, T: Deserialize<'de>>(node: &Node) -> (Option<T>, Vec<Diagnostic>) {
    let ctx = Ctx::default();
    let result = T::deserialize(NodeDe {
        node,
        ctx: &ctx,
        path: Path::Root,
    });
    let mut diags = ctx.diags.into_inner();
    match result {
        Ok(v) => (Some(v), diags),
        Err(e) => {
            if !e.recorded {
                diags.push(Diagnostic::error("spec-shape", e.message).at(node.span));
            }
            (None, diags)
        }
    }
}

#[derive(Default)]
struct Ctx {
    diags: RefCell<Vec<Diagnostic>>,
}

impl Ctx {
    fn push(&self, d: Diagnostic) {
        self.diags.borrow_mut().push(d);
    }
}

/// Where in the document a node sits, for messages ("in `cluster.nodes[1]`").
#[derive(Clone, Copy)]
enum Path<'a> {
    Root,
    Key(&'a Path<'a>, &'a str),
    Index(&'a Path<'a>, usize),
}

impl fmt::Display for Path<'_> {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            Path::Root => Ok(()),
            Path::Key(Path::Root, k) => write!(f, "{k}"),
            Path::Key(parent, k) => write!(f, "{parent}.{k}"),
            Path::Index(parent, i) => write!(f, "{parent}[{i}]"),
        }
    }
}

impl Path<'_> {
    fn last_key(&self) -> Option<&str> {
        match self {
            Path::Key(_, k) => Some(k),
            _ => None,
        }
    }

    fn describe(&self) -> String {
        match self {
            Path::Root => "at the top level".into(),
            p => format!("in `{p}`"),
        }
    }
}

struct NodeDe<'a> {
    node: &'a Node,
    ctx: &'a Ctx,
    path: Path<'a>,
}

impl<'a> NodeDe<'a> {
    fn mismatch(&self, expected: &str) {
        self.mismatch_with_help(expected, &format!("write {expected} here"));
    }

    fn mismatch_with_help(&self, expected: &str, help: &str) {
        let secretish = self.path.last_key().is_some_and(looks_secret);
        let found = if secretish && self.node.scalar_text().is_some() {
            "a value (not repeated here: the key suggests a secret)".to_string()
        } else {
            self.node.describe()
        };
        let mut d = Diagnostic::error(
            "wrong-type",
            format!(
                "expected {expected} {}, found {found}",
                self.path.describe()
            ),
        )
        .at(self.node.span)
        .help(help);
        if secretish {
            d = d.conceal(self.node.span);
        }
        self.ctx.push(d);
    }

    fn int(&self, expected: &str, min: i128, max: i128) -> i128 {
        match self.node.resolve() {
            Some(Resolved::Int(i)) if (i as i128) >= min && (i as i128) <= max => i as i128,
            Some(Resolved::Int(i)) => {
                self.ctx.push(
                    Diagnostic::error(
                        "out-of-range",
                        format!(
                            "{i} is out of range {}: expected {expected} from {min} to {max}",
                            self.path.describe()
                        ),
                    )
                    .at(self.node.span)
                    .help(format!("use a number from {min} to {max}")),
                );
                min.max(0)
            }
            Some(Resolved::Str(s)) if s.trim().parse::<i64>().is_ok() => {
                self.ctx.push(
                    Diagnostic::error(
                        "wrong-type",
                        format!(
                            "expected {expected} {}, found the text `{s}`",
                            self.path.describe()
                        ),
                    )
                    .at(self.node.span)
                    .help("remove the quotes so that YAML reads it as a number"),
                );
                min.max(0)
            }
            _ => {
                self.mismatch(expected);
                min.max(0)
            }
        }
    }
}

macro_rules! deserialize_int {
    ($($method:ident $visit:ident $ty:ty),*) => {$(
        fn $method<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
            let v = self.int("a whole number", <$ty>::MIN as i128, <$ty>::MAX as i128);
            visitor.$visit(v as $ty)
        }
    )*};
}

impl<'de> Deserializer<'de> for NodeDe<'_> {
    type Error = DeError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(_) => self.deserialize_seq(visitor),
            Value::Map(_) => self.deserialize_map(visitor),
            Value::Scalar { text, .. } => match self.node.resolve() {
                Some(Resolved::Null) => visitor.visit_unit(),
                Some(Resolved::Bool(b)) => visitor.visit_bool(b),
                Some(Resolved::Int(i)) => visitor.visit_i64(i),
                Some(Resolved::Float(f)) => visitor.visit_f64(f),
                _ => visitor.visit_str(text),
            },
        }
    }

    fn deserialize_bool<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.resolve() {
            Some(Resolved::Bool(b)) => visitor.visit_bool(b),
            Some(Resolved::Str(s))
                if matches!(
                    s.to_ascii_lowercase().as_str(),
                    "yes" | "no" | "on" | "off" | "y" | "n"
                ) =>
            {
                self.ctx.push(
                    Diagnostic::error(
                        "wrong-type",
                        format!(
                            "expected `true` or `false` {}, found `{s}`",
                            self.path.describe()
                        ),
                    )
                    .at(self.node.span)
                    .help("YAML 1.2 reads only `true` and `false` as booleans; write one of them"),
                );
                visitor.visit_bool(false)
            }
            _ => {
                self.mismatch("`true` or `false`");
                visitor.visit_bool(false)
            }
        }
    }

    deserialize_int!(
        deserialize_i8 visit_i8 i8, deserialize_i16 visit_i16 i16, deserialize_i32 visit_i32 i32,
        deserialize_i64 visit_i64 i64, deserialize_u8 visit_u8 u8, deserialize_u16 visit_u16 u16,
        deserialize_u32 visit_u32 u32, deserialize_u64 visit_u64 u64
    );

    fn deserialize_f32<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_f64(visitor)
    }

    fn deserialize_f64<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match self.node.resolve() {
            Some(Resolved::Float(f)) => visitor.visit_f64(f),
            Some(Resolved::Int(i)) => visitor.visit_f64(i as f64),
            _ => {
                self.mismatch("a number");
                visitor.visit_f64(0.0)
            }
        }
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Scalar { text, .. } if self.node.resolve() != Some(Resolved::Null) => {
                visitor.visit_str(text)
            }
            _ => {
                self.mismatch("text");
                visitor.visit_str("")
            }
        }
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        if self.node.resolve() == Some(Resolved::Null) {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_unit<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_unit_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_seq<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        match &self.node.value {
            Value::Seq(items) => visitor.visit_seq(Seq {
                items: items.iter(),
                index: 0,
                ctx: self.ctx,
                path: &self.path,
            }),
            _ => {
                // An absent value (`key:`) stands for an empty list.
                if self.node.resolve() != Some(Resolved::Null) {
                    self.mismatch_with_help(
                        "a list",
                        "write a list here: one `- item` per line below the key, or `[a, b]` on one line",
                    );
                }
                visitor.visit_seq(Seq {
                    items: [].iter(),
                    index: 0,
                    ctx: self.ctx,
                    path: &self.path,
                })
            }
        }
    }

    fn deserialize_tuple<V: Visitor<'de>>(
        self,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_tuple_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _len: usize,
        visitor: V,
    ) -> Result<V::Value, DeError> {
        self.deserialize_seq(visitor)
    }

    fn deserialize_map<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        let entries: &[(Node, Node)] = match &self.node.value {
            Value::Map(entries) => entries,
            _ => {
                if self.node.resolve() != Some(Resolved::Null) {
                    self.mismatch("a mapping of names to values");
                }
                &[]
            }
        };
        visitor.visit_map(Map {
            entries: entries.iter(),
            fields: None,
            value: None,
            ctx: self.ctx,
            path: &self.path,
        })
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        if name == YAML_NODE {
            return visitor.visit_map(NodeFields::new(self.node));
        }
        if name == SPANNED {
            return visitor.visit_map(SpannedAccess {
                de: Some(self),
                step: 0,
            });
        }
        if name == FLAG_OR_MAPPING && !matches!(self.node.value, Value::Map(_)) {
            return match self.node.resolve() {
                Some(Resolved::Bool(b)) => visitor.visit_bool(b),
                Some(Resolved::Str(s))
                    if matches!(
                        s.to_ascii_lowercase().as_str(),
                        "yes" | "no" | "on" | "off" | "y" | "n"
                    ) =>
                {
                    self.deserialize_bool(visitor)
                }
                _ => {
                    self.mismatch_with_help(
                        "`true`, `false` or a mapping",
                        &format!(
                            "write `true`, or a mapping with keys such as {}",
                            list(fields)
                        ),
                    );
                    visitor.visit_bool(false)
                }
            };
        }
        if name == SCALAR_OR_STRUCT && self.node.scalar_text().is_some() {
            return self.deserialize_any(visitor);
        }
        if name == SECRET_REF && self.node.scalar_text().is_some() {
            if self.node.resolve() != Some(Resolved::Null) {
                let key = self.path.last_key().unwrap_or("value");
                let secret = kebab(key);
                self.ctx.push(
                    Diagnostic::error(
                        "secret-inline",
                        format!(
                            "a secret value is written in the spec {}; the spec holds only references to secrets",
                            self.path.describe()
                        ),
                    )
                    .at(self.node.span)
                    .conceal(self.node.span)
                    .label("secret value (hidden)")
                    .help(format!(
                        "store the value with `homelab secrets set {secret}` (it is kept encrypted in secrets.sops.yaml), \
                         write `{key}: {{secret: {secret}}}` here, and remove the value from this file and from its git history"
                    )),
                );
            }
            return visitor.visit_map(ReportedMark { done: false });
        }
        let entries: &[(Node, Node)] = match &self.node.value {
            Value::Map(entries) => entries,
            _ => {
                if self.node.resolve() != Some(Resolved::Null) {
                    let expected = if fields.is_empty() {
                        "a mapping".to_string()
                    } else {
                        format!(
                            "a mapping with keys such as {}",
                            fields
                                .iter()
                                .take(3)
                                .map(|f| format!("`{f}`"))
                                .collect::<Vec<_>>()
                                .join(", ")
                        )
                    };
                    self.mismatch(&expected);
                }
                &[]
            }
        };
        visitor.visit_map(Map {
            entries: entries.iter(),
            fields: Some(fields),
            value: None,
            ctx: self.ctx,
            path: &self.path,
        })
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeError> {
        let chosen = match self.node.resolve() {
            Some(Resolved::Str(s)) if variants.contains(&s) => s.to_string(),
            Some(Resolved::Bool(b)) if variants.contains(&b.to_string().as_str()) => b.to_string(),
            other => {
                let found = match other {
                    Some(Resolved::Str(s)) => format!("`{s}`"),
                    _ => self.node.describe(),
                };
                let choices = variants
                    .iter()
                    .map(|v| format!("`{v}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let mut d = Diagnostic::error(
                    "unknown-choice",
                    format!("{found} is not a valid choice {}", self.path.describe()),
                )
                .at(self.node.span)
                .label(format!("expected one of {choices}"));
                d = match other
                    .and_then(|r| match r {
                        Resolved::Str(s) => Some(s),
                        _ => None,
                    })
                    .and_then(|s| did_you_mean(s, variants).or_else(|| synonym(s, variants)))
                {
                    Some(s) => d.suggest(s).help(format!("did you mean `{s}`?")),
                    None => d.help(format!("use one of {choices}")),
                };
                self.ctx.push(d);
                variants.first().copied().unwrap_or_default().to_string()
            }
        };
        visitor.visit_enum(UnitVariant(chosen))
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeError> {
        visitor.visit_unit()
    }
}

struct Seq<'a, I> {
    items: I,
    index: usize,
    ctx: &'a Ctx,
    path: &'a Path<'a>,
}

impl<'a, 'de, I: Iterator<Item = &'a Node>> SeqAccess<'de> for Seq<'a, I> {
    type Error = DeError;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeError> {
        let Some(node) = self.items.next() else {
            return Ok(None);
        };
        let index = self.index;
        self.index += 1;
        let path = Path::Index(self.path, index);
        seed.deserialize(NodeDe {
            node,
            ctx: self.ctx,
            path,
        })
        .map(Some)
        .map_err(|e| record(self.ctx, e, node.span))
    }
}

fn record(ctx: &Ctx, e: DeError, span: Span) -> DeError {
    if e.recorded {
        return e;
    }
    ctx.push(Diagnostic::error("spec-shape", e.message.clone()).at(span));
    DeError {
        message: e.message,
        recorded: true,
    }
}

struct Map<'a, I> {
    entries: I,
    /// Known keys of a struct; unknown ones are reported and skipped.
    fields: Option<&'static [&'static str]>,
    value: Option<(&'a Node, &'a Node)>,
    ctx: &'a Ctx,
    path: &'a Path<'a>,
}

impl<'a, 'de, I: Iterator<Item = &'a (Node, Node)>> MapAccess<'de> for Map<'a, I> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        for (key, value) in self.entries.by_ref() {
            let Some(name) = key.scalar_text() else {
                continue;
            };
            if let Some(fields) = self.fields
                && !fields.contains(&name)
            {
                let mut d = Diagnostic::error(
                    "unknown-key",
                    format!("unknown key `{name}` {}", self.path.describe()),
                )
                .at(key.span);
                if looks_secret(name) && value.scalar_text().is_some() {
                    d = d.conceal(value.span);
                }
                d = match did_you_mean(name, fields) {
                    Some(s) => d
                        .label(format!("did you mean `{s}`?"))
                        .suggest(s)
                        .help(format!(
                            "rename it to `{s}`; the keys allowed here are {}",
                            list(fields)
                        )),
                    None => d.help(format!("the keys allowed here are {}", list(fields))),
                };
                self.ctx.push(d);
                continue;
            }
            self.value = Some((key, value));
            return seed
                .deserialize(name.into_deserializer())
                .map(Some)
                .map_err(|e: DeError| record(self.ctx, e, key.span));
        }
        Ok(None)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let (key, node) = self
            .value
            .take()
            .ok_or_else(|| de::Error::custom("value without key"))?;
        let name = key.scalar_text().unwrap_or_default();
        let path = Path::Key(self.path, name);
        seed.deserialize(NodeDe {
            node,
            ctx: self.ctx,
            path,
        })
        .map_err(|e| record(self.ctx, e, node.span))
    }
}

fn list(fields: &[&str]) -> String {
    fields
        .iter()
        .map(|f| format!("`{f}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct SpannedAccess<'a> {
    de: Option<NodeDe<'a>>,
    step: usize,
}

impl<'de> MapAccess<'de> for SpannedAccess<'_> {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        let Some(key) = SPANNED_FIELDS.get(self.step) else {
            return Ok(None);
        };
        seed.deserialize((*key).into_deserializer()).map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        let step = self.step;
        self.step += 1;
        let span = self.de.as_ref().map(|d| d.node.span).unwrap_or_default();
        match step {
            0 => seed.deserialize((span.start as u64).into_deserializer()),
            1 => seed.deserialize((span.end as u64).into_deserializer()),
            _ => {
                let de = self
                    .de
                    .take()
                    .ok_or_else(|| de::Error::custom("spanned value read twice"))?;
                seed.deserialize(de)
            }
        }
    }
}

/// A one-entry map telling a secret reference that its problem was already reported.
struct ReportedMark {
    done: bool,
}

impl<'de> MapAccess<'de> for ReportedMark {
    type Error = DeError;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeError> {
        if self.done {
            return Ok(None);
        }
        self.done = true;
        seed.deserialize(REPORTED_MARK.into_deserializer())
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeError> {
        seed.deserialize(().into_deserializer())
    }
}

struct UnitVariant(String);

impl<'de> EnumAccess<'de> for UnitVariant {
    type Error = DeError;
    type Variant = Self;

    fn variant_seed<V: DeserializeSeed<'de>>(self, seed: V) -> Result<(V::Value, Self), DeError> {
        let v = seed.deserialize(self.0.as_str().into_deserializer())?;
        Ok((v, self))
    }
}

impl<'de> VariantAccess<'de> for UnitVariant {
    type Error = DeError;

    fn unit_variant(self) -> Result<(), DeError> {
        Ok(())
    }

    fn newtype_variant_seed<T: DeserializeSeed<'de>>(self, _seed: T) -> Result<T::Value, DeError> {
        Err(de::Error::custom("only plain choices are supported here"))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, DeError> {
        Err(de::Error::custom("only plain choices are supported here"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        _visitor: V,
    ) -> Result<V::Value, DeError> {
        Err(de::Error::custom("only plain choices are supported here"))
    }
}

/// Words people use for a choice that the spec spells differently.
const SYNONYMS: &[(&str, &str)] = &[
    ("master", "server"),
    ("control-plane", "server"),
    ("controlplane", "server"),
    ("worker", "agent"),
    ("node", "agent"),
    ("prod", "production"),
    ("live", "production"),
    ("stage", "staging"),
    ("test", "staging"),
    ("http", "http01"),
    ("dns", "dns01"),
    ("aws", "route53"),
    ("do", "digitalocean"),
    ("pi-hole", "pihole"),
    ("crit", "critical"),
    ("p1", "critical"),
    ("warn", "warning"),
    ("p2", "warning"),
    ("p3", "info"),
    ("off", "none"),
    ("disabled", "none"),
];

/// The choice a common other word for it means, e.g. `master` for `server`.
pub fn synonym<'a>(given: &str, known: &[&'a str]) -> Option<&'a str> {
    let given = given.to_ascii_lowercase();
    SYNONYMS
        .iter()
        .find(|(word, _)| *word == given)
        .and_then(|(_, meant)| known.iter().copied().find(|k| k == meant))
}

/// `superuserPassword` -> `superuser-password`, `DB_PASSWORD` -> `db-password`: a secret
/// name derived from the key it is for.
fn kebab(key: &str) -> String {
    let mut out = String::new();
    let mut prev_lower = false;
    for c in key.chars() {
        if c.is_ascii_uppercase() && prev_lower {
            out.push('-');
        }
        prev_lower = c.is_ascii_lowercase() || c.is_ascii_digit();
        match c {
            '_' | ' ' | '.' => out.push('-'),
            c => out.push(c.to_ascii_lowercase()),
        }
    }
    out
}

/// The closest known name to a misspelt one, if it is close enough to be a likely typo.
pub fn did_you_mean<'a>(given: &str, known: &[&'a str]) -> Option<&'a str> {
    let given_lower = given.to_ascii_lowercase();
    known
        .iter()
        .map(|k| (edit_distance(&given_lower, &k.to_ascii_lowercase()), *k))
        .filter(|(d, k)| *d <= (k.len().max(given.len()) / 3).max(1))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// Optimal string alignment distance: insertions, deletions, substitutions and swaps of
/// neighbours each count as one edit (a swap is the most common typo in keys).
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            d[i][j] = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d[i][j] = d[i][j].min(d[i - 2][j - 2] + 1);
            }
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::yaml::parse;

    #[derive(Deserialize, Debug)]
    #[serde(rename_all = "camelCase", deny_unknown_fields)]
    #[allow(dead_code)]
    struct Thing {
        name: Option<Spanned<String>>,
        port: Option<u16>,
        enabled: Option<bool>,
        #[serde(default)]
        tags: Vec<String>,
        kind: Option<Kind>,
    }

    #[derive(Deserialize, Debug, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Kind {
        Server,
        Agent,
    }

    #[test]
    fn reports_every_problem_and_keeps_going() {
        let src = "nmae: x\nport: 70000\nenabled: yes\ntags: foo\nkind: sever\nname: ok\n";
        let node = parse(src).unwrap();
        let (thing, diags) = from_node::<Thing>(&node);
        let codes: Vec<_> = diags.iter().map(|d| d.code).collect();

        assert_eq!(
            codes,
            [
                "unknown-key",
                "out-of-range",
                "wrong-type",
                "wrong-type",
                "unknown-choice"
            ]
        );
        assert_eq!(diags[0].label.as_deref(), Some("did you mean `name`?"));
        assert_eq!(diags[4].help.as_deref(), Some("did you mean `server`?"));
        let thing = thing.unwrap();
        let name = thing.name.unwrap();
        assert_eq!(name.value, "ok");
        assert_eq!(&src[name.span.start..name.span.end], "ok");
    }

    #[test]
    fn yaml_values_pass_through_with_positions() {
        #[derive(Deserialize, Debug)]
        #[serde(deny_unknown_fields)]
        struct Holder {
            values: Option<YamlValue>,
            port: Option<u16>,
        }
        let src = "values:\n  a: {b: [1, 'x', null]}\n  c: &c yes\n  d: *c\nport: 80\n";
        let node = parse(src).unwrap();
        let (holder, diags) = from_node::<Holder>(&node);
        assert!(diags.is_empty(), "{diags:?}");
        let holder = holder.unwrap();
        let values = holder.values.unwrap();
        let Value::Map(root) = &node.value else {
            panic!()
        };
        assert_eq!(values.0, root[0].1, "the node as parsed, spans and all");
        assert_eq!(
            values.to_json(),
            serde_json::json!({"a": {"b": [1, "x", null]}, "c": "yes", "d": "yes"})
        );
        assert_eq!(
            &src[values.span().start..values.span().end],
            "a: {b: [1, 'x', null]}\n  c: &c yes\n  d: *c"
        );
        assert_eq!(holder.port, Some(80));
    }

    #[test]
    fn secret_looking_keys() {
        for key in [
            "password",
            "superuserPassword",
            "DB_PASSWD",
            "grafanaAdminPasword",
            "apiToken",
            "api-key",
            "secretEnv",
            "PRIVATE_KEY",
            "userKey",
        ] {
            assert!(looks_secret(key), "{key}");
        }
        for key in [
            "name",
            "address",
            "port",
            "sshPort",
            "tokenizer-free",
            "topic",
        ] {
            assert_eq!(looks_secret(key), key.contains("token"), "{key}");
        }
    }

    #[test]
    fn suggestions_need_closeness() {
        assert_eq!(
            did_you_mean("adress", &["address", "name"]),
            Some("address")
        );
        assert_eq!(did_you_mean("naem", &["address", "name"]), Some("name"));
        assert_eq!(did_you_mean("zzzz", &["address", "name"]), None);
    }
}
