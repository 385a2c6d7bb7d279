//! The line scanner: one dump line in, one borrowed [`Record`] out, no allocation.
//!
//! It is a small hand-written JSON reader specialised for the flat objects Ruby writes. It does
//! not rely on Ruby's key order (keys are matched by name wherever they stand), skips unknown keys
//! of any shape, and repairs the two mistakes Ruby really makes inside strings:
//!
//! * an unescaped `"` (class names, paths): a quote closes a string only when the next non-blank
//!   byte is structural (`,` `}` `]` `:`) or the line ends, which always holds for valid JSON;
//! * an unescaped `\` (Windows-style paths): a backslash that starts no JSON escape is literal, and
//!   `\"` followed by the start of the next field (`, "`) or the end of the object is a literal
//!   backslash followed by the closing quote, which valid JSON can never contain inside a string.
//!
//! Anything it cannot read is a [`BadLineReason`] naming the byte offset and what was expected.

use memchr::{memchr, memchr_iter, memchr2};

use crate::error::BadLineReason;
use crate::record::{
    JsonStr, ObjectFlags, ObjectRecord, ObjectType, Record, References, RootRecord, ShapeRecord,
};

/// A parsed line and, when the line needed repair, the first reason why.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedLine<'a> {
    /// The record.
    pub record: Record<'a>,
    /// Set when the line was not valid JSON but could be repaired.
    pub repair: Option<BadLineReason>,
}

/// A top-level key this scanner knows.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Key {
    Address,
    Type,
    Class,
    File,
    Line,
    Method,
    Generation,
    Memsize,
    Bytesize,
    Value,
    References,
    Flags,
    Flag(u16),
    Encoding,
    Capacity,
    Name,
    RealClassName,
    Superclass,
    Ivars,
    Length,
    Size,
    Struct,
    ImemoType,
    Fd,
    ObjectId,
    ShapeId,
    SlotSize,
    Root,
    Id,
    Other,
}

/// Known keys by first byte, each spelled with its closing quote so a prefix cannot match.
pub(crate) fn known_key_spellings(first: u8) -> &'static [(&'static [u8], Key)] {
    match first {
        b'a' => &[(b"address\"", Key::Address)],
        b't' => &[(b"type\"", Key::Type)],
        b'c' => &[
            (b"class\"", Key::Class),
            (b"capacity\"", Key::Capacity),
            (b"chilled\"", Key::Flag(ObjectFlags::CHILLED)),
            (
                b"compare_by_identity\"",
                Key::Flag(ObjectFlags::COMPARE_BY_IDENTITY),
            ),
        ],
        b'f' => &[
            (b"file\"", Key::File),
            (b"flags\"", Key::Flags),
            (b"frozen\"", Key::Flag(ObjectFlags::FROZEN)),
            (b"fstring\"", Key::Flag(ObjectFlags::FSTRING)),
            (b"fd\"", Key::Fd),
        ],
        b'l' => &[(b"line\"", Key::Line), (b"length\"", Key::Length)],
        b'm' => &[(b"memsize\"", Key::Memsize), (b"method\"", Key::Method)],
        b'g' => &[(b"generation\"", Key::Generation)],
        b'b' => &[
            (b"bytesize\"", Key::Bytesize),
            (b"broken\"", Key::Flag(ObjectFlags::BROKEN)),
        ],
        b'v' => &[(b"value\"", Key::Value)],
        b'r' => &[
            (b"references\"", Key::References),
            (b"root\"", Key::Root),
            (b"real_class_name\"", Key::RealClassName),
        ],
        b'e' => &[
            (b"embedded\"", Key::Flag(ObjectFlags::EMBEDDED)),
            (b"encoding\"", Key::Encoding),
        ],
        b's' => &[
            (b"shared\"", Key::Flag(ObjectFlags::SHARED)),
            (b"size\"", Key::Size),
            (b"struct\"", Key::Struct),
            (b"superclass\"", Key::Superclass),
            (b"singleton\"", Key::Flag(ObjectFlags::SINGLETON)),
            (b"shape_id\"", Key::ShapeId),
            (b"slot_size\"", Key::SlotSize),
        ],
        b'n' => &[(b"name\"", Key::Name)],
        b'i' => &[
            (b"ivars\"", Key::Ivars),
            (b"imemo_type\"", Key::ImemoType),
            (b"id\"", Key::Id),
        ],
        b'o' => &[(b"object_id\"", Key::ObjectId)],
        _ => &[],
    }
}

/// Returns whether `text` starts with `prefix` (1 to 24 bytes) using two overlapping word
/// compares instead of a `memcmp` call: key spellings are short and this runs for every key.
#[inline(always)]
pub(crate) fn has_prefix(text: &[u8], prefix: &[u8]) -> bool {
    let length = prefix.len();
    if text.len() < length {
        return false;
    }
    let word = |bytes: &[u8], at: usize| -> u64 {
        let mut buffer = [0u8; 8];
        buffer.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(buffer)
    };
    let half = |bytes: &[u8], at: usize| -> u32 {
        let mut buffer = [0u8; 4];
        buffer.copy_from_slice(&bytes[at..at + 4]);
        u32::from_le_bytes(buffer)
    };
    match length {
        16..=24 => {
            word(text, 0) == word(prefix, 0)
                && word(text, 8) == word(prefix, 8)
                && word(text, length - 8) == word(prefix, length - 8)
        }
        8..=15 => {
            word(text, 0) == word(prefix, 0) && word(text, length - 8) == word(prefix, length - 8)
        }
        4..=7 => {
            half(text, 0) == half(prefix, 0) && half(text, length - 4) == half(prefix, length - 4)
        }
        _ => text[..length] == *prefix,
    }
}

/// What the `"type"` field said, before we know which record to build.
#[derive(Clone, Copy, PartialEq, Eq)]
enum LineKind {
    Object(ObjectType),
    Root,
    Shape,
}

/// Parses one dump line (without its newline).
pub fn parse_line(line: &[u8]) -> Result<ParsedLine<'_>, BadLineReason> {
    parse_line_checked(line, true)
}

/// Parses one line; `may_hold_nul` is false when the caller knows the line has no NUL byte
/// (the parser checks whole chunks at once, which is much cheaper than every line).
#[inline]
pub(crate) fn parse_line_checked(
    line: &[u8],
    may_hold_nul: bool,
) -> Result<ParsedLine<'_>, BadLineReason> {
    let mut cursor = Cursor {
        line,
        position: 0,
        repair: None,
    };
    if may_hold_nul && memchr(0, line).is_some() {
        cursor.note_repair(BadLineReason::NulByte);
    }
    cursor.skip_blanks();
    if cursor.position == line.len() {
        return Err(BadLineReason::Blank);
    }
    cursor.expect(b'{', "'{' at the start of the line")?;

    let mut object = ObjectRecord::default();
    let mut kind = None;
    let mut root_name = JsonStr::default();
    let mut shape_id = None;
    let mut has_address = false;

    cursor.skip_blanks();
    if cursor.peek() == Some(b'}') {
        cursor.position += 1;
    } else {
        loop {
            cursor.skip_blanks();
            let key = cursor.read_field_key()?;
            cursor.skip_blanks();
            cursor.expect(b':', "':' after a key")?;
            cursor.skip_blanks();
            match key {
                Key::Address => {
                    object.address = cursor.read_hex_string("address")?;
                    has_address = true;
                }
                Key::Type => {
                    let name = cursor.read_string()?.raw();
                    kind = Some(match name {
                        b"ROOT" => LineKind::Root,
                        b"SHAPE" => LineKind::Shape,
                        other => LineKind::Object(ObjectType::from_dump_name(other)),
                    });
                }
                Key::Class => object.class = Some(cursor.read_hex_string("class")?),
                Key::File => object.file = Some(cursor.read_text("file")?),
                Key::Line => object.line = Some(cursor.read_u32("line")?),
                Key::Method => object.method = Some(cursor.read_text("method")?),
                Key::Generation => object.generation = Some(cursor.read_u32("generation")?),
                Key::Memsize => object.memsize = cursor.read_u64("memsize")?,
                Key::Bytesize => object.bytesize = Some(cursor.read_u64("bytesize")?),
                Key::Value => object.value = Some(cursor.read_string_or_scalar()?),
                Key::References => object.references = cursor.read_references()?,
                Key::Flags => cursor.read_flags(&mut object)?,
                Key::Flag(flag) => cursor.read_flag(&mut object.flags, flag)?,
                Key::Encoding => object.encoding = Some(cursor.read_string()?),
                Key::Capacity => object.capacity = Some(cursor.read_u64("capacity")?),
                Key::Name => object.name = Some(cursor.read_text("name")?),
                Key::RealClassName => {
                    object.real_class_name = Some(cursor.read_text("real_class_name")?)
                }
                Key::Superclass => object.superclass = Some(cursor.read_hex_string("superclass")?),
                Key::Ivars => object.ivars = Some(cursor.read_u64("ivars")?),
                Key::Length => object.length = Some(cursor.read_u64("length")?),
                Key::Size => object.size = Some(cursor.read_u64("size")?),
                Key::Struct => object.struct_name = Some(cursor.read_string()?),
                Key::ImemoType => object.imemo_type = Some(cursor.read_string()?),
                Key::Fd => object.fd = Some(cursor.read_i64("fd")?),
                Key::ObjectId => object.object_id = Some(cursor.read_u64("object_id")?),
                Key::ShapeId => object.shape_id = Some(cursor.read_u64("shape_id")?),
                Key::SlotSize => object.slot_size = Some(cursor.read_u64("slot_size")?),
                Key::Root => root_name = cursor.read_string()?,
                Key::Id => shape_id = Some(cursor.read_u64("id")?),
                // Keys we do not model (coderange, default, parent_id, edge_name, ...).
                Key::Other => cursor.skip_value(0)?,
            }
            cursor.skip_blanks();
            match cursor.next_byte() {
                Some(b',') => continue,
                Some(b'}') => break,
                _ => return Err(cursor.malformed("',' or '}' after a value")),
            }
        }
    }
    cursor.skip_blanks();
    if cursor.position != line.len() {
        return Err(cursor.malformed("end of line after the object"));
    }

    let record = match kind {
        Some(LineKind::Root) => Record::Root(RootRecord {
            root: root_name,
            references: object.references,
        }),
        Some(LineKind::Shape) => Record::Shape(ShapeRecord {
            id: shape_id,
            memsize: object.memsize,
        }),
        Some(LineKind::Object(object_type)) if has_address => {
            object.object_type = Some(object_type);
            Record::Object(object)
        }
        None if has_address => Record::Object(object),
        _ => return Err(BadLineReason::MissingAddress),
    };
    Ok(ParsedLine {
        record,
        repair: cursor.repair,
    })
}

/// Parses `0x7f3056e1c0e8` (or bare hex digits) into an address.
pub(crate) fn parse_hex_address(text: &[u8]) -> Option<u64> {
    let digits = text.strip_prefix(b"0x").unwrap_or(text);
    if digits.is_empty() || digits.len() > 16 {
        return None;
    }
    let mut value: u64 = 0;
    for &byte in digits {
        let nibble = match byte {
            b'0'..=b'9' => byte - b'0',
            b'a'..=b'f' => byte - b'a' + 10,
            b'A'..=b'F' => byte - b'A' + 10,
            _ => return None,
        };
        value = (value << 4) | u64::from(nibble);
    }
    Some(value)
}

/// A read position in one line, plus the first repair the line needed.
struct Cursor<'a> {
    line: &'a [u8],
    position: usize,
    repair: Option<BadLineReason>,
}

impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.line.get(self.position).copied()
    }

    fn next_byte(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.position += 1;
        Some(byte)
    }

    fn skip_blanks(&mut self) {
        while let Some(b' ' | b'\t' | b'\r') = self.peek() {
            self.position += 1;
        }
    }

    fn expect(&mut self, wanted: u8, expected: &'static str) -> Result<(), BadLineReason> {
        if self.peek() == Some(wanted) {
            self.position += 1;
            Ok(())
        } else {
            Err(self.malformed(expected))
        }
    }

    fn malformed(&self, expected: &'static str) -> BadLineReason {
        BadLineReason::Malformed {
            offset: self.position,
            expected: expected.into(),
        }
    }

    fn note_repair(&mut self, reason: BadLineReason) {
        if self.repair.is_none() {
            self.repair = Some(reason);
        }
    }

    /// Reads a top-level key and says which one it is, without a second comparison pass.
    fn read_field_key(&mut self) -> Result<Key, BadLineReason> {
        let rest = self.line.get(self.position + 1..).unwrap_or_default();
        if self.peek() == Some(b'"')
            && let Some(&first) = rest.first()
        {
            for (spelling, key) in known_key_spellings(first) {
                if has_prefix(rest, spelling) {
                    self.position += 1 + spelling.len();
                    return Ok(*key);
                }
            }
        }
        self.read_key()?;
        Ok(Key::Other)
    }

    /// Reads a key. Keys Ruby writes are short ASCII identifiers, so the next quote ends them;
    /// a plain loop beats memchr's set-up cost at these lengths.
    fn read_key(&mut self) -> Result<&'a [u8], BadLineReason> {
        self.expect(b'"', "'\"' starting a key")?;
        let start = self.position;
        let mut end = start;
        while let Some(&byte) = self.line.get(end) {
            if byte == b'"' {
                self.position = end + 1;
                return Ok(&self.line[start..end]);
            }
            end += 1;
        }
        Err(self.malformed("'\"' ending a key"))
    }

    /// Returns whether a `"` at `quote` can close a string: valid JSON always follows a closing
    /// quote with a structural byte or the end of the line.
    fn closes_string(&self, quote: usize) -> bool {
        let mut next = quote + 1;
        while let Some(b' ' | b'\t' | b'\r') = self.line.get(next) {
            next += 1;
        }
        matches!(self.line.get(next), None | Some(b',' | b'}' | b']' | b':'))
    }

    /// Returns whether the bytes after `\"` start the next field (`, "key":` with a plain
    /// identifier as key) or end the object (`}` and the end of the line). Valid JSON can
    /// contain neither inside a string: there the quotes of `"key"` would be escaped too. So
    /// when they follow `\"`, the backslash was a literal one and the quote closes the string.
    /// (`\",` followed by the closing quote, a string ending in `",`, is valid and not matched.)
    fn starts_next_field(&self, after_quote: usize) -> bool {
        let rest = &self.line[after_quote..];
        if rest.trim_ascii_end() == b"}" {
            return true;
        }
        let Some(after_comma) = rest.strip_prefix(b",") else {
            return false;
        };
        let Some(key_and_rest) = after_comma.trim_ascii_start().strip_prefix(b"\"") else {
            return false;
        };
        let key_length = key_and_rest
            .iter()
            .take_while(|byte| byte.is_ascii_alphanumeric() || **byte == b'_')
            .count();
        key_length > 0
            && key_and_rest[key_length..]
                .strip_prefix(b"\"")
                .is_some_and(|after_key| after_key.trim_ascii_start().first() == Some(&b':'))
    }

    /// Reads a string value, repairing unescaped quotes and backslashes.
    fn read_string(&mut self) -> Result<JsonStr<'a>, BadLineReason> {
        self.expect(b'"', "'\"' starting a string")?;
        let start = self.position;
        let mut search = start;
        let mut has_escapes = false;
        loop {
            let Some(offset) = memchr2(b'"', b'\\', &self.line[search..]) else {
                return Err(self.malformed("'\"' ending a string"));
            };
            let found = search + offset;
            if self.line[found] == b'\\' {
                has_escapes = true;
                match self.line.get(found + 1) {
                    Some(b'"') if self.starts_next_field(found + 2) => {
                        self.note_repair(BadLineReason::InvalidEscape);
                        self.position = found + 2;
                        return Ok(JsonStr::new(&self.line[start..found + 1], true));
                    }
                    Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' | b'u') => {
                        search = found + 2;
                    }
                    Some(_) => {
                        self.note_repair(BadLineReason::InvalidEscape);
                        search = found + 1;
                    }
                    None => return Err(self.malformed("'\"' ending a string")),
                }
            } else if self.closes_string(found) {
                self.position = found + 1;
                return Ok(JsonStr::new(&self.line[start..found], has_escapes));
            } else {
                self.note_repair(BadLineReason::UnescapedQuote);
                search = found + 1;
            }
        }
    }

    /// Reads a string that people will read (file, method, class name): also checks UTF-8.
    fn read_text(&mut self, field: &'static str) -> Result<JsonStr<'a>, BadLineReason> {
        let text = self.read_string()?;
        if !text.raw().is_ascii() && std::str::from_utf8(text.raw()).is_err() {
            self.note_repair(BadLineReason::InvalidUtf8(field.into()));
        }
        Ok(text)
    }

    fn read_hex_string(&mut self, field: &'static str) -> Result<u64, BadLineReason> {
        // Fast path: `"0x<hex digits>"`, which is what Ruby always writes.
        if self.line.get(self.position..self.position + 3) == Some(b"\"0x") {
            let mut end = self.position + 3;
            let mut value: u64 = 0;
            while let Some(&byte) = self.line.get(end) {
                let nibble = match byte {
                    b'0'..=b'9' => byte - b'0',
                    b'a'..=b'f' => byte - b'a' + 10,
                    _ => break,
                };
                value = (value << 4) | u64::from(nibble);
                end += 1;
            }
            let digits = end - self.position - 3;
            if self.line.get(end) == Some(&b'"')
                && (1..=16).contains(&digits)
                && self.closes_string(end)
            {
                self.position = end + 1;
                return Ok(value);
            }
        }
        let text = self.read_string()?;
        parse_hex_address(text.raw()).ok_or(BadLineReason::InvalidField {
            field: field.into(),
        })
    }

    /// Reads the raw text of a scalar (number, `true`, `false`, `null`).
    fn read_scalar(&mut self) -> &'a [u8] {
        let start = self.position;
        while let Some(byte) = self.peek() {
            if matches!(byte, b',' | b'}' | b']' | b' ' | b'\t' | b'\r') {
                break;
            }
            self.position += 1;
        }
        &self.line[start..self.position]
    }

    fn read_u64(&mut self, field: &'static str) -> Result<u64, BadLineReason> {
        let digits = self.read_scalar();
        if digits.is_empty() || digits.len() > 20 {
            return Err(BadLineReason::InvalidField {
                field: field.into(),
            });
        }
        let mut value: u64 = 0;
        for &byte in digits {
            if !byte.is_ascii_digit() {
                return Err(BadLineReason::InvalidField {
                    field: field.into(),
                });
            }
            value = value
                .checked_mul(10)
                .and_then(|value| value.checked_add(u64::from(byte - b'0')))
                .ok_or(BadLineReason::InvalidField {
                    field: field.into(),
                })?;
        }
        Ok(value)
    }

    fn read_u32(&mut self, field: &'static str) -> Result<u32, BadLineReason> {
        let value = self.read_u64(field)?;
        u32::try_from(value).map_err(|_| BadLineReason::InvalidField {
            field: field.into(),
        })
    }

    fn read_i64(&mut self, field: &'static str) -> Result<i64, BadLineReason> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.position += 1;
        }
        let magnitude = self.read_u64(field)?;
        let magnitude = i64::try_from(magnitude).map_err(|_| BadLineReason::InvalidField {
            field: field.into(),
        })?;
        Ok(if negative { -magnitude } else { magnitude })
    }

    fn read_string_or_scalar(&mut self) -> Result<JsonStr<'a>, BadLineReason> {
        if self.peek() == Some(b'"') {
            self.read_string()
        } else {
            Ok(JsonStr::new(self.read_scalar(), false))
        }
    }

    fn read_flag(&mut self, flags: &mut ObjectFlags, flag: u16) -> Result<(), BadLineReason> {
        match self.read_scalar() {
            b"true" => flags.set(flag),
            b"false" | b"null" => {}
            _ => {
                return Err(BadLineReason::InvalidField {
                    field: "flag".into(),
                });
            }
        }
        Ok(())
    }

    /// Reads `["0x..", "0x..", ...]`. Addresses contain no `]`, so one memchr finds the end.
    fn read_references(&mut self) -> Result<References<'a>, BadLineReason> {
        self.expect(b'[', "'[' starting references")?;
        let start = self.position;
        let length = memchr(b']', &self.line[start..])
            .ok_or_else(|| self.malformed("']' ending references"))?;
        let inner = &self.line[start..start + length];
        self.position = start + length + 1;
        let count = if inner.trim_ascii().is_empty() {
            0
        } else {
            memchr_iter(b',', inner).count() + 1
        };
        let count = u32::try_from(count).map_err(|_| BadLineReason::InvalidField {
            field: "references".into(),
        })?;
        Ok(References::new(inner, count))
    }

    /// Reads the nested `"flags"` object: booleans, plus integers such as `age` on new Rubies.
    fn read_flags(&mut self, object: &mut ObjectRecord<'a>) -> Result<(), BadLineReason> {
        if let Some(end) = self.read_common_flags(&mut object.flags) {
            self.position = end;
            return Ok(());
        }
        self.read_any_flags(object)
    }

    /// Fast path for the flags Ruby writes on almost every line: `"name":true` pairs of the known
    /// boolean flags separated by `, `. Returns the end position, or `None` to take the general
    /// path (which then re-reads from the start, so nothing is set twice in a harmful way).
    fn read_common_flags(&self, flags: &mut ObjectFlags) -> Option<usize> {
        const KNOWN: [(&[u8], u16); 4] = [
            (b"\"wb_protected\":true", ObjectFlags::WB_PROTECTED),
            (b"\"old\":true", ObjectFlags::OLD),
            (b"\"uncollectible\":true", ObjectFlags::UNCOLLECTIBLE),
            (b"\"marked\":true", ObjectFlags::MARKED),
        ];
        let line = self.line;
        let mut position = self.position;
        if line.get(position) != Some(&b'{') {
            return None;
        }
        position += 1;
        let mut seen = ObjectFlags::default();
        loop {
            let rest = &line[position..];
            let (text, flag) = KNOWN.iter().find(|(text, _)| rest.starts_with(text))?;
            seen.set(*flag);
            position += text.len();
            match line.get(position..position + 2) {
                Some(b", ") => position += 2,
                _ if line.get(position) == Some(&b'}') => {
                    flags.set(seen.bits());
                    return Some(position + 1);
                }
                _ => return None,
            }
        }
    }

    fn read_any_flags(&mut self, object: &mut ObjectRecord<'a>) -> Result<(), BadLineReason> {
        self.expect(b'{', "'{' starting flags")?;
        self.skip_blanks();
        if self.peek() == Some(b'}') {
            self.position += 1;
            return Ok(());
        }
        loop {
            self.skip_blanks();
            let key = self.read_key()?;
            self.skip_blanks();
            self.expect(b':', "':' after a flag name")?;
            self.skip_blanks();
            let flag = match key {
                b"wb_protected" => Some(ObjectFlags::WB_PROTECTED),
                b"old" => Some(ObjectFlags::OLD),
                b"uncollectible" => Some(ObjectFlags::UNCOLLECTIBLE),
                b"marked" => Some(ObjectFlags::MARKED),
                b"pinned" => Some(ObjectFlags::PINNED),
                b"seen_object_id" => Some(ObjectFlags::SEEN_OBJECT_ID),
                _ => None,
            };
            match (flag, key) {
                (Some(flag), _) => self.read_flag(&mut object.flags, flag)?,
                (None, b"age") => object.age = Some(self.read_u32("age")?),
                (None, _) => self.skip_value(0)?,
            }
            self.skip_blanks();
            match self.next_byte() {
                Some(b',') => continue,
                Some(b'}') => return Ok(()),
                _ => return Err(self.malformed("',' or '}' in flags")),
            }
        }
    }

    /// Skips any JSON value, nested objects and arrays included.
    fn skip_value(&mut self, depth: u32) -> Result<(), BadLineReason> {
        if depth > 64 {
            return Err(self.malformed("nesting no deeper than 64"));
        }
        match self.peek() {
            Some(b'"') => self.read_string().map(|_| ()),
            Some(open @ (b'{' | b'[')) => {
                let close = if open == b'{' { b'}' } else { b']' };
                self.position += 1;
                loop {
                    self.skip_blanks();
                    match self.peek() {
                        Some(byte) if byte == close => {
                            self.position += 1;
                            return Ok(());
                        }
                        Some(b',' | b':') => self.position += 1,
                        Some(_) => {
                            let before = self.position;
                            self.skip_value(depth + 1)?;
                            if self.position == before {
                                return Err(self.malformed("a value"));
                            }
                        }
                        None => return Err(self.malformed("the end of a nested value")),
                    }
                }
            }
            Some(_) => {
                if self.read_scalar().is_empty() {
                    Err(self.malformed("a value"))
                } else {
                    Ok(())
                }
            }
            None => Err(self.malformed("a value")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn object(line: &[u8]) -> ObjectRecord<'_> {
        match parse_line(line).expect("line parses").record {
            Record::Object(object) => object,
            other => panic!("expected an object, got {other:?}"),
        }
    }

    #[test]
    fn test_parse_line_reads_a_traced_string() {
        let line = br#"{"address":"0x7f3056e1c0e8", "type":"STRING", "class":"0x7f305663a438", "frozen":true, "embedded":true, "fstring":true, "bytesize":10, "value":"/usr/share", "encoding":"UTF-8", "file":"/app/x.rb", "line":12, "method":"call", "generation":34, "memsize":40, "flags":{"wb_protected":true, "old":true, "uncollectible":true, "marked":true}}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.repair, None);
        let Record::Object(object) = parsed.record else {
            panic!("not an object")
        };
        assert_eq!(object.address, 0x7f3056e1c0e8);
        assert_eq!(object.object_type, Some(ObjectType::String));
        assert_eq!(object.class, Some(0x7f305663a438));
        assert_eq!(object.bytesize, Some(10));
        assert_eq!(object.value.unwrap().decode(), "/usr/share");
        assert_eq!(object.file.unwrap().decode(), "/app/x.rb");
        assert_eq!(object.line, Some(12));
        assert_eq!(object.method.unwrap().decode(), "call");
        assert_eq!(object.generation, Some(34));
        assert_eq!(object.memsize, 40);
        assert!(
            object
                .flags
                .contains(ObjectFlags::FROZEN | ObjectFlags::FSTRING | ObjectFlags::OLD)
        );
        assert!(!object.flags.contains(ObjectFlags::SHARED));
    }

    #[test]
    fn test_parse_line_reads_roots_and_shapes() {
        let root =
            parse_line(br#"{"type":"ROOT", "root":"vm", "references":["0x1", "0x2", "0x3"]}"#)
                .unwrap();
        let Record::Root(root) = root.record else {
            panic!("not a root")
        };
        assert_eq!(root.root.raw(), b"vm");
        assert_eq!(root.references.len(), 3);
        assert_eq!(
            root.references.addresses().collect::<Vec<_>>(),
            vec![1, 2, 3]
        );

        let shape = parse_line(br#"{"address":"0x7f00", "type":"SHAPE", "id":7, "parent_id":3, "depth":2, "shape_type":"IVAR", "edge_name":"@a", "memsize":120}"#).unwrap();
        assert_eq!(
            shape.record,
            Record::Shape(ShapeRecord {
                id: Some(7),
                memsize: 120
            })
        );
    }

    #[test]
    fn test_parse_line_does_not_depend_on_key_order() {
        let object = object(br#"{"memsize":80,"flags":{"age":2},"generation":5,"type":"ARRAY","length":3,"address":"0xabc","object_id":99,"references":[]}"#);
        assert_eq!(object.address, 0xabc);
        assert_eq!(object.object_type, Some(ObjectType::Array));
        assert_eq!(object.length, Some(3));
        assert_eq!(object.object_id, Some(99));
        assert_eq!(object.age, Some(2));
        assert_eq!(object.references.len(), 0);
        assert_eq!(object.memsize, 80);
    }

    #[test]
    fn test_parse_line_absent_memsize_means_zero() {
        assert_eq!(object(br#"{"address":"0x1", "type":"SYMBOL"}"#).memsize, 0);
    }

    #[test]
    fn test_parse_line_repairs_unescaped_quote_in_class_name() {
        let line =
            br##"{"address":"0x10", "type":"CLASS", "name":"#<Class:"weird">", "memsize":40}"##;
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.repair, Some(BadLineReason::UnescapedQuote));
        let Record::Object(object) = parsed.record else {
            panic!("not an object")
        };
        assert_eq!(object.name.unwrap().raw(), br##"#<Class:"weird">"##);
        assert_eq!(object.memsize, 40);
    }

    #[test]
    fn test_parse_line_repairs_trailing_unescaped_backslash() {
        let line =
            br#"{"address":"0x10", "type":"STRING", "file":"C:\app\", "line":3, "memsize":40}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.repair, Some(BadLineReason::InvalidEscape));
        let Record::Object(object) = parsed.record else {
            panic!("not an object")
        };
        assert_eq!(object.file.unwrap().raw(), br"C:\app\");
        assert_eq!(object.line, Some(3));
    }

    #[test]
    fn test_parse_line_reads_string_ending_in_escaped_quote_and_comma() {
        // A value ending in `",` is `\",` followed by the closing quote: valid, not a repair.
        let line = br#"{"address":"0x10", "type":"STRING", "value":"{\"total\":\"9.90\",", "encoding":"UTF-8", "memsize":40}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.repair, None);
        let Record::Object(object) = parsed.record else {
            panic!("not an object")
        };
        assert_eq!(object.value.unwrap().decode(), r#"{"total":"9.90","#);
        assert_eq!(object.encoding.unwrap().raw(), b"UTF-8");
    }

    #[test]
    fn test_parse_line_never_repairs_valid_json_strings() {
        // Property: any string serde_json escapes reads back unrepaired and equal, wherever it
        // stands among other fields. The alphabet favours what the repair heuristics look at.
        let alphabet = ['"', '\\', ',', ' ', ':', '}', '{', 'a', '_', 'é', '\n', '/'];
        let mut state = 0x853c_49e6_748f_ea9bu64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let length = (state % 12) as usize;
            let text: String = (0..length)
                .map(|index| alphabet[((state >> (5 * index)) % alphabet.len() as u64) as usize])
                .collect();
            let encoded = serde_json::to_string(&text).unwrap();
            let line = format!(
                r#"{{"address":"0x10", "type":"STRING", "value":{encoded}, "file":{encoded}, "memsize":40}}"#
            );
            let parsed =
                parse_line(line.as_bytes()).unwrap_or_else(|reason| panic!("{line}: {reason}"));
            assert_eq!(parsed.repair, None, "{line}");
            let Record::Object(object) = parsed.record else {
                panic!("not an object")
            };
            assert_eq!(object.value.unwrap().decode(), text, "{line}");
            assert_eq!(object.file.unwrap().decode(), text, "{line}");
            assert_eq!(object.memsize, 40, "{line}");
        }
    }

    #[test]
    fn test_parse_line_keeps_valid_escapes_unrepaired() {
        let line = br#"{"address":"0x10", "type":"STRING", "value":"say \"hi\", \"there\"\\", "memsize":40}"#;
        let parsed = parse_line(line).unwrap();
        assert_eq!(parsed.repair, None);
        let Record::Object(object) = parsed.record else {
            panic!("not an object")
        };
        assert_eq!(object.value.unwrap().decode(), r#"say "hi", "there"\"#);
    }

    #[test]
    fn test_parse_line_reports_nul_and_bad_utf8_as_repairs() {
        let nul =
            b"{\"address\":\"0x10\", \"type\":\"STRING\", \"method\":\"a\0b\", \"memsize\":40}";
        assert_eq!(
            parse_line(nul).unwrap().repair,
            Some(BadLineReason::NulByte)
        );
        let utf8 =
            b"{\"address\":\"0x10\", \"type\":\"STRING\", \"method\":\"caf\xe9\", \"memsize\":40}";
        assert_eq!(
            parse_line(utf8).unwrap().repair,
            Some(BadLineReason::InvalidUtf8("method".into()))
        );
    }

    #[test]
    fn test_parse_line_rejects_garbage_with_a_reason() {
        assert!(matches!(
            parse_line(b"\x00\xff garbage"),
            Err(BadLineReason::Malformed { .. })
        ));
        assert_eq!(parse_line(b"   "), Err(BadLineReason::Blank));
        assert!(matches!(
            parse_line(br#"{"address":"0x1", "type":"STR"#),
            Err(BadLineReason::Malformed { .. })
        ));
        assert_eq!(
            parse_line(br#"{"type":"STRING"}"#),
            Err(BadLineReason::MissingAddress)
        );
        assert_eq!(
            parse_line(br#"{"address":"zz", "type":"STRING"}"#),
            Err(BadLineReason::InvalidField {
                field: "address".into()
            })
        );
        assert!(matches!(
            parse_line(br#"{"address":"0x1"} trailing"#),
            Err(BadLineReason::Malformed { .. })
        ));
    }

    #[test]
    fn test_has_prefix_matches_memcmp_for_every_length() {
        let text = b"abcdefghijklmnopqrstuvwxyz";
        for length in 1..=24 {
            assert!(has_prefix(text, &text[..length]), "length {length}");
            let mut wrong = text[..length].to_vec();
            wrong[length - 1] ^= 1;
            assert!(!has_prefix(text, &wrong), "length {length} last byte");
            wrong[length - 1] ^= 1;
            wrong[length / 2] ^= 1;
            assert!(!has_prefix(text, &wrong), "length {length} middle byte");
        }
        assert!(!has_prefix(b"abc", b"abcd"));
    }

    #[test]
    fn test_parse_line_skips_unknown_nested_values() {
        let object = object(br#"{"address":"0x1", "type":"OBJECT", "future":{"a":[1,{"b":"]}"}],"c":null}, "memsize":8}"#);
        assert_eq!(object.memsize, 8);
    }
}
