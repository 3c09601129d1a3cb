//! Property tests: whatever string, key or typed scalar we store, the emitter writes YAML that
//! parses back to the same tree (no retyping, no lost whitespace, no syntax breakage).

use homelab_secrets::yaml::{Mapping, Value, emit_document, parse_documents};
use proptest::prelude::*;

fn tricky_string() -> impl Strategy<Value = String> {
    prop_oneof![
        // Printable ASCII, which covers every password alphabet.
        "[ -~]{0,40}",
        // Multi-line text with indentation, trailing spaces and blank lines.
        "([ -~]{0,12}\n){0,5}[ -~]{0,12}\n{0,3}",
        // YAML-significant spellings.
        prop::sample::select(vec![
            "true",
            "False",
            "yes",
            "off",
            "~",
            "null",
            "0x1F",
            "0777",
            "1_000",
            "1e3",
            ".inf",
            "-.nan",
            "1:20:30",
            "2024-01-01",
            "2024-01-01T00:00:00Z",
            "<<",
            "- x",
            "? x",
            ": x",
            "---",
            "...",
            "#",
            "a #b",
            "a: b",
            "[x]",
            "{x}",
            "*ref",
            "&anc",
            "!tag",
            "%dir",
            "@at",
            "`tick",
            "'q'",
            "\"dq\"",
            "\\",
            "\t",
            "\r\n",
            " ",
            "",
            "\u{85}",
            "\u{2028}",
            "\u{feff}bom",
            "é ü 中文",
            "😀",
            "\u{0}",
            "\u{7f}",
            "\u{a0}",
        ])
        .prop_map(str::to_owned),
        // Arbitrary Unicode.
        any::<String>(),
    ]
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        4 => tricky_string().prop_map(Value::Str),
        1 => any::<i64>().prop_map(Value::Int),
        1 => any::<f64>().prop_filter("NaN never equals itself", |f| !f.is_nan()).prop_map(Value::Float),
        1 => any::<bool>().prop_map(Value::Bool),
        1 => Just(Value::Null),
        1 => prop::collection::vec(any::<u8>(), 0..20).prop_map(Value::Bytes),
    ]
}

fn tree() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(3, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Seq),
            prop::collection::vec((tricky_string(), inner), 0..4).prop_map(|entries| {
                let mut m = Mapping::new();
                for (k, v) in entries {
                    m.insert(k, v);
                }
                Value::Map(m)
            }),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn any_string_value_round_trips(s in tricky_string(), indent in prop::sample::select(vec![2usize, 4])) {
        let mut m = Mapping::new();
        m.insert("key", Value::Str(s.clone()));
        let doc = Value::Map(m);
        let text = emit_document(&doc, indent);
        let back = parse_documents(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, vec![doc], "emitted:\n{}", text);
    }

    #[test]
    fn any_tree_round_trips(entries in prop::collection::vec((tricky_string(), tree()), 0..5)) {
        let mut m = Mapping::new();
        for (k, v) in entries {
            m.insert(k, v);
        }
        let doc = Value::Map(m);
        let text = emit_document(&doc, 4);
        let back = parse_documents(&text).map_err(|e| TestCaseError::fail(format!("{e}\n{text}")))?;
        prop_assert_eq!(back, vec![doc], "emitted:\n{}", text);
    }
}
