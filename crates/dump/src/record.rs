//! Borrowed views of one dump line: heap objects, GC roots and (Ruby 3.2+) object shapes.
//!
//! Every string field is a [`JsonStr`]: the raw bytes between the quotes, still escaped, so the
//! hot path never allocates. Decoding happens only where a caller asks for it.

use std::borrow::Cow;

/// A heap object's type, as the dump's `"type"` field names it (`T_STRING` is `"STRING"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
#[allow(missing_docs)] // The variants are Ruby's own type names.
pub enum ObjectType {
    Object,
    Class,
    Module,
    Float,
    String,
    Regexp,
    Array,
    Hash,
    Struct,
    Bignum,
    File,
    Data,
    Match,
    Complex,
    Rational,
    Symbol,
    Imemo,
    Iclass,
    Node,
    Zombie,
    Moved,
    None,
    Nil,
    True,
    False,
    Fixnum,
    Undef,
    /// A type name this parser does not know (a newer Ruby); counted, never an error.
    Unknown,
}

impl ObjectType {
    /// All variants, in `repr(u8)` order.
    pub const ALL: [ObjectType; 28] = [
        ObjectType::Object,
        ObjectType::Class,
        ObjectType::Module,
        ObjectType::Float,
        ObjectType::String,
        ObjectType::Regexp,
        ObjectType::Array,
        ObjectType::Hash,
        ObjectType::Struct,
        ObjectType::Bignum,
        ObjectType::File,
        ObjectType::Data,
        ObjectType::Match,
        ObjectType::Complex,
        ObjectType::Rational,
        ObjectType::Symbol,
        ObjectType::Imemo,
        ObjectType::Iclass,
        ObjectType::Node,
        ObjectType::Zombie,
        ObjectType::Moved,
        ObjectType::None,
        ObjectType::Nil,
        ObjectType::True,
        ObjectType::False,
        ObjectType::Fixnum,
        ObjectType::Undef,
        ObjectType::Unknown,
    ];

    /// Returns the type for a dump's type name (`b"STRING"`), or `Unknown`.
    pub fn from_dump_name(name: &[u8]) -> ObjectType {
        match name {
            b"STRING" => ObjectType::String,
            b"OBJECT" => ObjectType::Object,
            b"ARRAY" => ObjectType::Array,
            b"HASH" => ObjectType::Hash,
            b"IMEMO" => ObjectType::Imemo,
            b"DATA" => ObjectType::Data,
            b"CLASS" => ObjectType::Class,
            b"MODULE" => ObjectType::Module,
            b"ICLASS" => ObjectType::Iclass,
            b"SYMBOL" => ObjectType::Symbol,
            b"FLOAT" => ObjectType::Float,
            b"REGEXP" => ObjectType::Regexp,
            b"STRUCT" => ObjectType::Struct,
            b"BIGNUM" => ObjectType::Bignum,
            b"FILE" => ObjectType::File,
            b"MATCH" => ObjectType::Match,
            b"COMPLEX" => ObjectType::Complex,
            b"RATIONAL" => ObjectType::Rational,
            b"NODE" => ObjectType::Node,
            b"ZOMBIE" => ObjectType::Zombie,
            b"MOVED" => ObjectType::Moved,
            b"NONE" => ObjectType::None,
            b"NIL" => ObjectType::Nil,
            b"TRUE" => ObjectType::True,
            b"FALSE" => ObjectType::False,
            b"FIXNUM" => ObjectType::Fixnum,
            b"UNDEF" => ObjectType::Undef,
            _ => ObjectType::Unknown,
        }
    }

    /// Returns the dump's name for this type (`"STRING"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ObjectType::Object => "OBJECT",
            ObjectType::Class => "CLASS",
            ObjectType::Module => "MODULE",
            ObjectType::Float => "FLOAT",
            ObjectType::String => "STRING",
            ObjectType::Regexp => "REGEXP",
            ObjectType::Array => "ARRAY",
            ObjectType::Hash => "HASH",
            ObjectType::Struct => "STRUCT",
            ObjectType::Bignum => "BIGNUM",
            ObjectType::File => "FILE",
            ObjectType::Data => "DATA",
            ObjectType::Match => "MATCH",
            ObjectType::Complex => "COMPLEX",
            ObjectType::Rational => "RATIONAL",
            ObjectType::Symbol => "SYMBOL",
            ObjectType::Imemo => "IMEMO",
            ObjectType::Iclass => "ICLASS",
            ObjectType::Node => "NODE",
            ObjectType::Zombie => "ZOMBIE",
            ObjectType::Moved => "MOVED",
            ObjectType::None => "NONE",
            ObjectType::Nil => "NIL",
            ObjectType::True => "TRUE",
            ObjectType::False => "FALSE",
            ObjectType::Fixnum => "FIXNUM",
            ObjectType::Undef => "UNDEF",
            ObjectType::Unknown => "UNKNOWN",
        }
    }

    /// Returns the type whose `repr(u8)` value is `code`.
    pub fn from_code(code: u8) -> Option<ObjectType> {
        ObjectType::ALL.get(usize::from(code)).copied()
    }

    /// Returns the `repr(u8)` value, stable across versions (new types are appended).
    pub fn code(self) -> u8 {
        self as u8
    }
}

impl std::fmt::Display for ObjectType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for ObjectType {
    type Err = String;

    fn from_str(name: &str) -> Result<Self, Self::Err> {
        match ObjectType::from_dump_name(name.to_ascii_uppercase().as_bytes()) {
            ObjectType::Unknown if !name.eq_ignore_ascii_case("UNKNOWN") => {
                Err(format!("unknown object type {name:?}"))
            }
            known => Ok(known),
        }
    }
}

impl serde::Serialize for ObjectType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> serde::Deserialize<'de> for ObjectType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// The raw content of a JSON string as it stands in the dump: still escaped, maybe not UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct JsonStr<'a> {
    raw: &'a [u8],
    has_escapes: bool,
}

impl<'a> JsonStr<'a> {
    pub(crate) fn new(raw: &'a [u8], has_escapes: bool) -> Self {
        JsonStr { raw, has_escapes }
    }

    /// Wraps raw string content kept from an earlier parse; `has_escapes` may over-approximate.
    pub fn from_raw(raw: &'a [u8], has_escapes: bool) -> Self {
        JsonStr { raw, has_escapes }
    }

    /// Returns the bytes between the quotes, escapes included.
    pub fn raw(&self) -> &'a [u8] {
        self.raw
    }

    /// Returns whether the raw bytes contain a backslash escape.
    pub fn has_escapes(&self) -> bool {
        self.has_escapes
    }

    /// Decodes escapes; bytes that are not valid UTF-8 become U+FFFD. Borrows when it can.
    pub fn decode(&self) -> Cow<'a, str> {
        if !self.has_escapes {
            return String::from_utf8_lossy(self.raw);
        }
        let mut bytes = Vec::with_capacity(self.raw.len());
        let mut position = 0;
        while position < self.raw.len() {
            let byte = self.raw[position];
            if byte != b'\\' || position + 1 >= self.raw.len() {
                bytes.push(byte);
                position += 1;
                continue;
            }
            let escaped = self.raw[position + 1];
            position += 2;
            match escaped {
                b'n' => bytes.push(b'\n'),
                b't' => bytes.push(b'\t'),
                b'r' => bytes.push(b'\r'),
                b'b' => bytes.push(0x08),
                b'f' => bytes.push(0x0c),
                b'u' => {
                    let code_unit = self
                        .raw
                        .get(position..position + 4)
                        .and_then(|hex| std::str::from_utf8(hex).ok())
                        .and_then(|hex| u32::from_str_radix(hex, 16).ok());
                    match code_unit {
                        Some(code_unit) => {
                            position += 4;
                            // Surrogates (emoji in class names) are rare; a lone one becomes U+FFFD.
                            let character = char::from_u32(code_unit).unwrap_or('\u{fffd}');
                            let mut buffer = [0u8; 4];
                            bytes.extend_from_slice(character.encode_utf8(&mut buffer).as_bytes());
                        }
                        None => bytes.extend_from_slice(b"\\u"),
                    }
                }
                b'"' | b'\\' | b'/' => bytes.push(escaped),
                // Not a JSON escape: Ruby wrote a literal backslash (a Windows-style path).
                other => bytes.extend_from_slice(&[b'\\', other]),
            }
        }
        Cow::Owned(String::from_utf8_lossy(&bytes).into_owned())
    }
}

/// Boolean flags of a heap object: the top-level ones and those in the nested `"flags"` object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ObjectFlags(u16);

#[allow(missing_docs)] // Each constant is the dump key of the same name.
impl ObjectFlags {
    pub const FROZEN: u16 = 1 << 0;
    pub const EMBEDDED: u16 = 1 << 1;
    pub const FSTRING: u16 = 1 << 2;
    pub const SHARED: u16 = 1 << 3;
    pub const BROKEN: u16 = 1 << 4;
    pub const WB_PROTECTED: u16 = 1 << 5;
    pub const OLD: u16 = 1 << 6;
    pub const UNCOLLECTIBLE: u16 = 1 << 7;
    pub const MARKED: u16 = 1 << 8;
    pub const PINNED: u16 = 1 << 9;
    pub const SINGLETON: u16 = 1 << 10;
    pub const COMPARE_BY_IDENTITY: u16 = 1 << 11;
    pub const SEEN_OBJECT_ID: u16 = 1 << 12;
    pub const CHILLED: u16 = 1 << 13;

    /// Returns whether every bit of `flag` is set.
    pub fn contains(self, flag: u16) -> bool {
        self.0 & flag == flag
    }

    pub(crate) fn set(&mut self, flag: u16) {
        self.0 |= flag;
    }

    /// Returns the raw bits.
    pub fn bits(self) -> u16 {
        self.0
    }
}

/// The addresses of a `"references"` array, parsed lazily.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct References<'a> {
    raw: &'a [u8],
    count: u32,
}

impl<'a> References<'a> {
    pub(crate) fn new(raw: &'a [u8], count: u32) -> Self {
        References { raw, count }
    }

    /// Returns how many references the array holds.
    pub fn len(&self) -> u32 {
        self.count
    }

    /// Returns whether the array is empty or absent.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Returns the referenced addresses; entries that are not hex addresses are skipped.
    pub fn addresses(&self) -> impl Iterator<Item = u64> + 'a {
        self.raw.split(|&byte| byte == b',').filter_map(|entry| {
            crate::scan::parse_hex_address(entry.trim_ascii().trim_ascii_matches_quotes())
        })
    }
}

/// Trims one pair of surrounding double quotes.
trait TrimQuotes {
    fn trim_ascii_matches_quotes(&self) -> &[u8];
}

impl TrimQuotes for [u8] {
    fn trim_ascii_matches_quotes(&self) -> &[u8] {
        let without_open = self.strip_prefix(b"\"").unwrap_or(self);
        without_open.strip_suffix(b"\"").unwrap_or(without_open)
    }
}

/// One heap object (every line with an `"address"` that is not a shape).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ObjectRecord<'a> {
    /// The slot address; unique within one dump only (slots are reused after GC).
    pub address: u64,
    /// The object's type.
    pub object_type: Option<ObjectType>,
    /// The address of the object's class (resolve it through the dump's CLASS/MODULE objects).
    pub class: Option<u64>,
    /// Allocation file; present only with allocation tracing.
    pub file: Option<JsonStr<'a>>,
    /// Allocation line; can be absent while `file` is present.
    pub line: Option<u32>,
    /// Allocating method; present only with allocation tracing.
    pub method: Option<JsonStr<'a>>,
    /// GC count at allocation; present only with allocation tracing.
    pub generation: Option<u32>,
    /// Bytes the object holds, slot included; absent means 0.
    pub memsize: u64,
    /// STRING length in bytes.
    pub bytesize: Option<u64>,
    /// STRING capacity, when not embedded.
    pub capacity: Option<u64>,
    /// STRING content (may be truncated by Ruby for broken strings), or FLOAT/SYMBOL value text.
    pub value: Option<JsonStr<'a>>,
    /// STRING encoding name.
    pub encoding: Option<JsonStr<'a>>,
    /// CLASS/MODULE name.
    pub name: Option<JsonStr<'a>>,
    /// Name of the class behind a singleton or anonymous class (Ruby 3.x).
    pub real_class_name: Option<JsonStr<'a>>,
    /// CLASS superclass address.
    pub superclass: Option<u64>,
    /// OBJECT instance variable count.
    pub ivars: Option<u64>,
    /// ARRAY length or STRUCT member count.
    pub length: Option<u64>,
    /// HASH entry count.
    pub size: Option<u64>,
    /// DATA struct type name.
    pub struct_name: Option<JsonStr<'a>>,
    /// IMEMO subtype.
    pub imemo_type: Option<JsonStr<'a>>,
    /// FILE descriptor.
    pub fd: Option<i64>,
    /// `object_id` where Ruby wrote it (objects whose id was taken; every object on new Rubies).
    pub object_id: Option<u64>,
    /// Object age in GCs (Ruby 3.x `flags.age`).
    pub age: Option<u32>,
    /// Shape id (Ruby 3.2+).
    pub shape_id: Option<u64>,
    /// Slot size in bytes (Ruby 3.2+).
    pub slot_size: Option<u64>,
    /// Boolean flags.
    pub flags: ObjectFlags,
    /// Outgoing references.
    pub references: References<'a>,
}

/// A `"type":"ROOT"` line: one category of GC roots and the objects it holds.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RootRecord<'a> {
    /// Root category (`vm`, `machine_context`, `global_list`, ...).
    pub root: JsonStr<'a>,
    /// The rooted objects.
    pub references: References<'a>,
}

/// A `"type":"SHAPE"` line (Ruby 3.2+): object shape metadata, not a heap object.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ShapeRecord {
    /// Shape id.
    pub id: Option<u64>,
    /// Bytes the shape holds.
    pub memsize: u64,
}

/// One parsed dump line.
// Boxing the object variant would allocate once per line on the hot path; records are borrowed
// by visitors, not stored, so their size costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Record<'a> {
    /// A heap object.
    Object(ObjectRecord<'a>),
    /// A GC root category.
    Root(RootRecord<'a>),
    /// An object shape (not a heap object).
    Shape(ShapeRecord),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_object_type_round_trips_through_names_and_codes() {
        for object_type in ObjectType::ALL {
            assert_eq!(
                ObjectType::from_dump_name(object_type.as_str().as_bytes()),
                object_type
            );
            assert_eq!(ObjectType::from_code(object_type.code()), Some(object_type));
            assert_eq!(object_type.as_str().parse::<ObjectType>(), Ok(object_type));
        }
        assert_eq!(
            ObjectType::from_dump_name(b"SOMETHING_NEW"),
            ObjectType::Unknown
        );
    }

    #[test]
    fn test_json_str_decode_handles_escapes_and_bad_utf8() {
        assert_eq!(
            JsonStr::new(br#"a\"b\\c\n\u00e9"#, true).decode(),
            "a\"b\\c\né"
        );
        assert_eq!(JsonStr::new(b"caf\xff", false).decode(), "caf\u{fffd}");
        assert_eq!(JsonStr::new(br"trailing\", true).decode(), "trailing\\");
        assert_eq!(JsonStr::new(br"\uZZZZ", true).decode(), "\\uZZZZ");
    }

    #[test]
    fn test_references_addresses_parses_hex_entries() {
        let references = References::new(br#""0x10", "0x2a", "junk""#, 3);
        assert_eq!(references.addresses().collect::<Vec<_>>(), vec![0x10, 0x2a]);
    }
}
