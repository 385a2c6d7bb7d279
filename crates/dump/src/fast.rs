//! The fast path: a tight scanner for clean lines in exactly the format Ruby writes.
//!
//! Ruby writes `{"key":value, "key":value, ...}`: no blanks but the one after each comma, no
//! nesting beyond `flags` and `references`, and, in almost every line, no escapes. This scanner
//! reads only such lines and gives up (`None`) on anything else: a backslash, a quote that does
//! not close a string, other spacing, non-ASCII text in a field people read, an unknown nested
//! value. The caller then runs the general scanner ([`crate::scan`]), which handles every line
//! and owns all repairs and error reports. So for any line the fast path accepts, its record is
//! the one the general scanner returns (a test checks this on real and mutated lines).
//!
//! Keys are still matched by name wherever they stand; the format, not the key order, is what
//! this path relies on.

use memchr::{memchr, memchr_iter, memchr2};

use crate::record::{
    ObjectFlags, ObjectRecord, ObjectType, Record, References, RootRecord, ShapeRecord,
};
use crate::scan::{Key, known_key_spellings};

/// Parses a clean line, or returns `None` for the general scanner to handle.
#[cfg(test)]
pub(crate) fn parse_clean_line(line: &[u8]) -> Option<Record<'_>> {
    let mut record = Record::Object(ObjectRecord::default());
    parse_clean_line_into(line, &mut record).then_some(record)
}

/// Parses a clean line into `record`, which must be a fresh `Record::Object`: the object is
/// filled in place, not built elsewhere and moved (it is some 450 bytes, and this runs for
/// every line). Returns `false`, leaving `record` to be discarded, for the general scanner to
/// handle the line. The caller must not offer lines that may hold a NUL byte (the parser checks
/// each chunk once).
#[inline]
pub(crate) fn parse_clean_line_into<'a>(line: &'a [u8], record: &mut Record<'a>) -> bool {
    parse_clean_object(line, record).is_some()
}

fn parse_clean_object<'a>(line: &'a [u8], record: &mut Record<'a>) -> Option<()> {
    if line.first() != Some(&b'{') {
        return None;
    }
    let Record::Object(object) = record else {
        return None;
    };
    let mut object_type = None;
    let mut is_root = false;
    let mut is_shape = false;
    let mut has_address = false;
    let mut root_name = None;
    let mut shape_id = None;
    let mut at = 1;
    loop {
        let (key, value_at) = key_at(line, at)?;
        at = value_at;
        match key {
            Key::Address => {
                let (address, next) = hex_string_at(line, at)?;
                object.address = address;
                has_address = true;
                at = next;
            }
            Key::Type => {
                // The last `type` wins, as in the general scanner.
                let (name, next) = string_at(line, at)?;
                is_root = name == b"ROOT";
                is_shape = name == b"SHAPE";
                object_type = (!is_root && !is_shape).then(|| ObjectType::from_dump_name(name));
                at = next;
            }
            Key::Class => {
                (object.class, at) =
                    hex_string_at(line, at).map(|(value, next)| (Some(value), next))?
            }
            Key::Superclass => {
                (object.superclass, at) =
                    hex_string_at(line, at).map(|(value, next)| (Some(value), next))?;
            }
            Key::File => (object.file, at) = text_at(line, at)?,
            Key::Method => (object.method, at) = text_at(line, at)?,
            Key::Name => (object.name, at) = text_at(line, at)?,
            Key::RealClassName => (object.real_class_name, at) = text_at(line, at)?,
            Key::Value => {
                if line.get(at) == Some(&b'"') {
                    let (value, next) = string_at(line, at)?;
                    object.value = Some(crate::record::JsonStr::from_raw(value, false));
                    at = next;
                } else {
                    let (value, next) = scalar_at(line, at)?;
                    object.value = Some(crate::record::JsonStr::from_raw(value, false));
                    at = next;
                }
            }
            Key::Encoding => (object.encoding, at) = plain_at(line, at)?,
            Key::Struct => (object.struct_name, at) = plain_at(line, at)?,
            Key::ImemoType => (object.imemo_type, at) = plain_at(line, at)?,
            Key::Root => (root_name, at) = plain_at(line, at)?,
            Key::Line => {
                (object.line, at) = u32_at(line, at).map(|(value, next)| (Some(value), next))?
            }
            Key::Generation => {
                (object.generation, at) =
                    u32_at(line, at).map(|(value, next)| (Some(value), next))?;
            }
            Key::Memsize => (object.memsize, at) = u64_at(line, at)?,
            Key::Bytesize => (object.bytesize, at) = some_u64_at(line, at)?,
            Key::Capacity => (object.capacity, at) = some_u64_at(line, at)?,
            Key::Ivars => (object.ivars, at) = some_u64_at(line, at)?,
            Key::Length => (object.length, at) = some_u64_at(line, at)?,
            Key::Size => (object.size, at) = some_u64_at(line, at)?,
            Key::ObjectId => (object.object_id, at) = some_u64_at(line, at)?,
            Key::ShapeId => (object.shape_id, at) = some_u64_at(line, at)?,
            Key::SlotSize => (object.slot_size, at) = some_u64_at(line, at)?,
            Key::Id => (shape_id, at) = some_u64_at(line, at)?,
            Key::Fd => {
                let (digits, next) = scalar_at(line, at)?;
                let (negative, digits) = match digits.strip_prefix(b"-") {
                    Some(rest) => (true, rest),
                    None => (false, digits),
                };
                let magnitude = i64::try_from(digits_value(digits)?).ok()?;
                object.fd = Some(if negative { -magnitude } else { magnitude });
                at = next;
            }
            Key::Flag(flag) => at = bool_at(line, at, &mut object.flags, flag)?,
            Key::Flags => at = flags_at(line, at, object)?,
            Key::References => (object.references, at) = references_at(line, at)?,
            Key::Other => {
                // Skip a plain string or scalar; anything nested goes to the general scanner.
                at = match line.get(at)? {
                    b'"' => string_at(line, at)?.1,
                    b'{' | b'[' => return None,
                    _ => scalar_at(line, at)?.1,
                };
            }
        }
        match line.get(at)? {
            b',' if line.get(at + 1) == Some(&b' ') => at += 2,
            b'}' if at + 1 == line.len() => break,
            _ => return None,
        }
    }
    if is_root {
        let references = object.references;
        *record = Record::Root(RootRecord {
            root: root_name.unwrap_or_default(),
            references,
        });
        return Some(());
    }
    if is_shape {
        let memsize = object.memsize;
        *record = Record::Shape(ShapeRecord {
            id: shape_id,
            memsize,
        });
        return Some(());
    }
    if !has_address {
        return None;
    }
    object.object_type = object_type;
    Some(())
}

/// Matches `"key":` at `at`; returns the key and where its value starts.
#[inline(always)]
fn key_at(line: &[u8], at: usize) -> Option<(Key, usize)> {
    if line.get(at) != Some(&b'"') {
        return None;
    }
    let rest = line.get(at + 1..)?;
    let (key, length) = match (word_at(rest, 0), word_at(rest, 8)) {
        (Some(first), Some(second)) => {
            // The first quote in the 16 bytes ends the key (keys hold no quotes or escapes).
            let length = match first_quote(first) {
                Some(length) => length,
                None => 8 + first_quote(second)?,
            };
            (
                key_for(
                    length,
                    first & low_bytes(length),
                    second & low_bytes(length.saturating_sub(8)),
                ),
                length,
            )
        }
        // Near the end of the line: too short for word loads, and rare.
        _ => {
            let length = memchr(b'"', rest)?;
            let spelling = &rest[..length + 1];
            let key = known_key_spellings(*rest.first()?)
                .iter()
                .find(|(known, _)| *known == spelling)
                .map_or(Key::Other, |(_, key)| *key);
            (key, length)
        }
    };
    let colon = at + 1 + length + 1;
    (line.get(colon) == Some(&b':')).then_some((key, colon + 1))
}

/// Loads 8 bytes at `at` as a little-endian word.
#[inline(always)]
fn word_at(bytes: &[u8], at: usize) -> Option<u64> {
    let chunk: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
    Some(u64::from_le_bytes(chunk))
}

/// Returns the position of the first `"` or `\\` at or after `start`. Most strings are short, so
/// the first 32 bytes are searched a word at a time inline; longer ones go to memchr2.
#[inline(always)]
fn quote_or_backslash(line: &[u8], start: usize) -> Option<usize> {
    let mut at = start;
    while at < start + 32 {
        let Some(word) = word_at(line, at) else { break };
        let found = byte_flags(word, b'"') | byte_flags(word, b'\\');
        if found != 0 {
            return Some(at + (found.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    memchr2(b'"', b'\\', line.get(at..)?).map(|offset| at + offset)
}

/// Flags the bytes of a little-endian word equal to `byte` (SWAR zero-byte search: the lowest
/// flag is always exact, higher ones may not be).
#[inline(always)]
fn byte_flags(word: u64, byte: u8) -> u64 {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let matched = word ^ (ONES * u64::from(byte));
    matched.wrapping_sub(ONES) & !matched & HIGHS
}

/// Returns the index of the first `"` byte in a little-endian word (SWAR zero-byte search:
/// the lowest flagged byte is always exact).
#[inline(always)]
fn first_quote(word: u64) -> Option<usize> {
    let found = byte_flags(word, b'"');
    (found != 0).then(|| (found.trailing_zeros() / 8) as usize)
}

/// Returns a mask of the low `count` bytes (all bytes from 8 on).
#[inline(always)]
fn low_bytes(count: usize) -> u64 {
    const MASKS: [u64; 9] = {
        let mut masks = [u64::MAX; 9];
        let mut count = 0;
        while count < 8 {
            masks[count] = (1u64 << (count * 8)) - 1;
            count += 1;
        }
        masks
    };
    MASKS[if count < 8 { count } else { 8 }]
}

/// Packs up to 8 bytes into a little-endian word, at compile time.
const fn packed(bytes: &[u8]) -> u64 {
    let mut word = 0u64;
    let mut index = 0;
    while index < bytes.len() && index < 8 {
        word |= (bytes[index] as u64) << (8 * index);
        index += 1;
    }
    word
}

/// Names the key of `length` bytes whose first 8 bytes are `first` and next 8 are `second`.
/// The same keys as [`known_key_spellings`] (a test checks they agree).
#[inline(always)]
fn key_for(length: usize, first: u64, second: u64) -> Key {
    macro_rules! keys {
        ($($spelling:literal => $key:expr),+ $(,)?) => {
            $(
                if first == const { packed($spelling) }
                    && (length <= 8 || second == const { packed(crate::fast::tail($spelling)) })
                {
                    return $key;
                }
            )+
        };
    }
    match length {
        2 => {
            keys!(b"id" => Key::Id, b"fd" => Key::Fd);
        }
        4 => {
            keys!(b"type" => Key::Type, b"file" => Key::File, b"line" => Key::Line, b"size" => Key::Size, b"name" => Key::Name, b"root" => Key::Root);
        }
        5 => {
            keys!(b"class" => Key::Class, b"flags" => Key::Flags, b"value" => Key::Value, b"ivars" => Key::Ivars);
        }
        6 => {
            keys!(b"method" => Key::Method, b"length" => Key::Length, b"frozen" => Key::Flag(ObjectFlags::FROZEN),
                b"shared" => Key::Flag(ObjectFlags::SHARED), b"broken" => Key::Flag(ObjectFlags::BROKEN), b"struct" => Key::Struct);
        }
        7 => {
            keys!(b"address" => Key::Address, b"memsize" => Key::Memsize, b"fstring" => Key::Flag(ObjectFlags::FSTRING),
                b"chilled" => Key::Flag(ObjectFlags::CHILLED));
        }
        8 => {
            keys!(b"embedded" => Key::Flag(ObjectFlags::EMBEDDED), b"bytesize" => Key::Bytesize, b"encoding" => Key::Encoding,
                b"capacity" => Key::Capacity, b"shape_id" => Key::ShapeId);
        }
        9 => {
            keys!(b"object_id" => Key::ObjectId, b"singleton" => Key::Flag(ObjectFlags::SINGLETON), b"slot_size" => Key::SlotSize);
        }
        10 => {
            keys!(b"generation" => Key::Generation, b"references" => Key::References, b"superclass" => Key::Superclass,
                b"imemo_type" => Key::ImemoType);
        }
        15 => {
            keys!(b"real_class_name" => Key::RealClassName);
        }
        _ => {}
    }
    Key::Other
}

/// Returns the bytes of a key spelling from the ninth on (empty for short keys), at compile time.
const fn tail(spelling: &[u8]) -> &[u8] {
    match spelling.split_at_checked(8) {
        Some((_, rest)) => rest,
        None => &[],
    }
}

/// Reads a string without escapes whose closing quote is followed by `,` or `}`.
#[inline(always)]
fn string_at(line: &[u8], at: usize) -> Option<(&[u8], usize)> {
    if line.get(at) != Some(&b'"') {
        return None;
    }
    let start = at + 1;
    let end = quote_or_backslash(line, start)?;
    if line[end] != b'"' || !matches!(line.get(end + 1), Some(b',' | b'}')) {
        return None;
    }
    Some((&line[start..end], end + 1))
}

/// Reads a string people will read: it must also be ASCII (the general path checks UTF-8).
#[inline(always)]
fn text_at(line: &[u8], at: usize) -> Option<(Option<crate::record::JsonStr<'_>>, usize)> {
    let (text, next) = string_at(line, at)?;
    text.is_ascii()
        .then(|| (Some(crate::record::JsonStr::from_raw(text, false)), next))
}

#[inline(always)]
fn plain_at(line: &[u8], at: usize) -> Option<(Option<crate::record::JsonStr<'_>>, usize)> {
    let (text, next) = string_at(line, at)?;
    Some((Some(crate::record::JsonStr::from_raw(text, false)), next))
}

/// Marks a byte that is not a lowercase hex digit in [`HEX_DIGIT_VALUES`].
const NOT_HEX: u8 = 0xff;

/// The value of each lowercase hex digit, [`NOT_HEX`] for every other byte: a table lookup
/// instead of a branch per digit.
const HEX_DIGIT_VALUES: [u8; 256] = {
    let mut values = [NOT_HEX; 256];
    let mut digit = 0;
    while digit < 16 {
        values[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    values
};

/// Reads `"0x<1 to 16 lowercase hex digits>"`.
#[inline(always)]
fn hex_string_at(line: &[u8], at: usize) -> Option<(u64, usize)> {
    if line.get(at..at + 3) != Some(b"\"0x") {
        return None;
    }
    let mut end = at + 3;
    let mut value: u64 = 0;
    // At most 16 digits are read: a longer run fails the length check below.
    while let Some(&byte) = line.get(end) {
        let nibble = HEX_DIGIT_VALUES[usize::from(byte)];
        if nibble == NOT_HEX || end - at - 3 == 16 {
            break;
        }
        value = (value << 4) | u64::from(nibble);
        end += 1;
    }
    let digits = end - at - 3;
    if !(1..=16).contains(&digits)
        || line.get(end) != Some(&b'"')
        || !matches!(line.get(end + 1), Some(b',' | b'}'))
    {
        return None;
    }
    Some((value, end + 1))
}

/// Reads a scalar up to the next `,` or `}`.
#[inline(always)]
fn scalar_at(line: &[u8], at: usize) -> Option<(&[u8], usize)> {
    let mut end = at;
    while let Some(&byte) = line.get(end) {
        if matches!(byte, b',' | b'}' | b' ' | b']' | b'\t' | b'\r') {
            break;
        }
        end += 1;
    }
    (end > at).then(|| (&line[at..end], end))
}

/// Returns the value of 1 to 20 ASCII digits, or `None` (not digits, or over `u64::MAX`).
#[inline(always)]
fn digits_value(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 {
        return None;
    }
    let mut value: u64 = 0;
    if digits.len() <= 19 {
        // 19 digits cannot overflow a u64: no overflow checks in the common case.
        for &byte in digits {
            let digit = byte.wrapping_sub(b'0');
            if digit > 9 {
                return None;
            }
            value = value * 10 + u64::from(digit);
        }
        return Some(value);
    }
    for &byte in digits {
        if !byte.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(byte - b'0'))?;
    }
    Some(value)
}

#[inline(always)]
fn u64_at(line: &[u8], at: usize) -> Option<(u64, usize)> {
    let (digits, next) = scalar_at(line, at)?;
    Some((digits_value(digits)?, next))
}

#[inline(always)]
fn some_u64_at(line: &[u8], at: usize) -> Option<(Option<u64>, usize)> {
    u64_at(line, at).map(|(value, next)| (Some(value), next))
}

#[inline(always)]
fn u32_at(line: &[u8], at: usize) -> Option<(u32, usize)> {
    let (value, next) = u64_at(line, at)?;
    Some((u32::try_from(value).ok()?, next))
}

#[inline(always)]
fn bool_at(line: &[u8], at: usize, flags: &mut ObjectFlags, flag: u16) -> Option<usize> {
    if line.get(at..at + 4) == Some(b"true") {
        flags.set(flag);
        Some(at + 4)
    } else if line.get(at..at + 5) == Some(b"false") {
        Some(at + 5)
    } else {
        None
    }
}

/// Reads `{"name":true, ...}` of the known boolean flags (and `age`); else `None`.
#[inline(always)]
fn flags_at(line: &[u8], mut at: usize, object: &mut ObjectRecord<'_>) -> Option<usize> {
    const KNOWN: [(&[u8], u16); 6] = [
        (b"\"wb_protected\":", ObjectFlags::WB_PROTECTED),
        (b"\"old\":", ObjectFlags::OLD),
        (b"\"uncollectible\":", ObjectFlags::UNCOLLECTIBLE),
        (b"\"marked\":", ObjectFlags::MARKED),
        (b"\"pinned\":", ObjectFlags::PINNED),
        (b"\"seen_object_id\":", ObjectFlags::SEEN_OBJECT_ID),
    ];
    if line.get(at) != Some(&b'{') {
        return None;
    }
    at += 1;
    loop {
        let rest = line.get(at..)?;
        if let Some((spelling, flag)) = KNOWN
            .iter()
            .find(|(spelling, _)| crate::scan::has_prefix(rest, spelling))
        {
            at = bool_at(line, at + spelling.len(), &mut object.flags, *flag)?;
        } else if crate::scan::has_prefix(rest, b"\"age\":") {
            let (age, next) = u32_at(line, at + 6)?;
            object.age = Some(age);
            at = next;
        } else {
            // Another boolean flag (`marking`, newer ones): skipped, as the general scanner does.
            if rest.first() != Some(&b'"') {
                return None;
            }
            let length = memchr(b'"', rest.get(1..)?)?;
            let colon = at + 1 + length + 1;
            if line.get(colon) != Some(&b':') {
                return None;
            }
            at = bool_at(line, colon + 1, &mut ObjectFlags::default(), 0)?;
        }
        match line.get(at)? {
            b',' if line.get(at + 1) == Some(&b' ') => at += 2,
            b'}' => return Some(at + 1),
            _ => return None,
        }
    }
}

/// Reads `["0x..", ...]`; addresses hold no `]`.
#[inline(always)]
fn references_at(line: &[u8], at: usize) -> Option<(References<'_>, usize)> {
    if line.get(at) != Some(&b'[') {
        return None;
    }
    let start = at + 1;
    let length = memchr(b']', line.get(start..)?)?;
    let inner = &line[start..start + length];
    let count = if inner.is_empty() {
        0
    } else {
        memchr_iter(b',', inner).count() + 1
    };
    Some((
        References::new(inner, u32::try_from(count).ok()?),
        start + length + 1,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::parse_line;

    /// The fast path's contract: whatever it accepts, the general scanner reads identically
    /// and without repair.
    fn assert_agrees(line: &[u8]) {
        // The parser never offers the fast path a line from a chunk holding a NUL byte.
        if line.contains(&0) {
            return;
        }
        if let Some(fast) = parse_clean_line(line) {
            let general = parse_line(line).unwrap_or_else(|reason| {
                panic!(
                    "fast path accepted a line the general scanner rejects ({reason}): {}",
                    String::from_utf8_lossy(line)
                )
            });
            assert_eq!(
                general.repair, None,
                "fast path accepted a line needing repair: {:?}",
                line
            );
            assert_eq!(fast, general.record, "{}", String::from_utf8_lossy(line));
        }
    }

    const LINES: [&[u8]; 6] = [
        br#"{"address":"0x7f3056e1c138", "type":"CLASS", "class":"0x7f3053177f20", "superclass":"0x7f3056e1c480", "real_class_name":"Class", "singleton":true, "references":["0x7f3056e1c480", "0x7f3053177e58"], "memsize":752, "flags":{"wb_protected":true, "old":true, "uncollectible":true, "marked":true}}"#,
        br#"{"address":"0x7f30566375f8", "type":"STRING", "class":"0x7f305663a438", "frozen":true, "embedded":true, "fstring":true, "bytesize":9, "value":"object_id", "encoding":"US-ASCII", "file":"/app/a.rb", "line":3, "method":"x", "generation":4, "memsize":40, "flags":{"wb_protected":true, "age":2}}"#,
        br#"{"type":"ROOT", "root":"vm", "references":["0x7f3056defcc8", "0x7f3056637fd0"]}"#,
        br#"{"address":"0x7f3056e1c020", "type":"IMEMO", "class":"0x7f3056e08a48", "imemo_type":"ment", "references":["0x7f3056e1c110"], "memsize":48}"#,
        br#"{"address":"0x7f00", "type":"SHAPE", "id":7, "parent_id":3, "depth":2, "shape_type":"IVAR", "edge_name":"@a", "memsize":120}"#,
        br#"{"address":"0x10", "type":"FILE", "class":"0x20", "fd":-1, "coderange":"7bit", "value":"1.00000e+100", "object_id":8, "memsize":40}"#,
    ];

    #[test]
    fn test_key_for_knows_every_key_the_general_scanner_knows() {
        for first in b'a'..=b'z' {
            for (spelling, key) in known_key_spellings(first) {
                let name = &spelling[..spelling.len() - 1];
                if name.len() > 16 {
                    // Longer keys (compare_by_identity) send their line to the general scanner.
                    let line = format!(
                        r#"{{"{}":true, "address":"0x1"}}"#,
                        String::from_utf8_lossy(name)
                    );
                    assert!(parse_clean_line(line.as_bytes()).is_none());
                    continue;
                }
                let mut padded = name.to_vec();
                padded.resize(16, b'"');
                let first_word = word_at(&padded, 0).unwrap() & low_bytes(name.len());
                let second_word =
                    word_at(&padded, 8).unwrap() & low_bytes(name.len().saturating_sub(8));
                assert_eq!(
                    key_for(name.len(), first_word, second_word),
                    *key,
                    "{}",
                    String::from_utf8_lossy(name)
                );
            }
        }
        assert_eq!(key_for(4, packed(b"typo"), 0), Key::Other);
        assert_eq!(first_quote(packed(b"ab\"cd\"ef")), Some(2));
        assert_eq!(first_quote(packed(b"abcdefgh")), None);
        // The first quote or backslash, before, inside and after the inline 32-byte window.
        for position in [0, 7, 8, 31, 32, 33, 100] {
            for stop in [b'"', b'\\'] {
                let mut line = vec![b'a'; 120];
                line[position] = stop;
                line[position + 5] = b'"';
                assert_eq!(quote_or_backslash(&line, 0), Some(position), "{position}");
            }
        }
        assert_eq!(quote_or_backslash(b"abc", 0), None);
        assert_eq!(digits_value(b"18446744073709551615"), Some(u64::MAX));
        assert_eq!(digits_value(b"18446744073709551616"), None);
        assert_eq!(digits_value(b"12a"), None);
        assert_eq!(
            digits_value(b"9999999999999999999"),
            Some(9_999_999_999_999_999_999)
        );
        assert_eq!(
            digits_value(b"99999999999999999999"),
            None,
            "20 digits over u64::MAX"
        );
        assert_eq!(low_bytes(0), 0);
        assert_eq!(low_bytes(3), 0xff_ffff);
        assert_eq!(low_bytes(12), u64::MAX);
        let address =
            |text: &str| hex_string_at(format!("{text},").as_bytes(), 0).map(|(value, _)| value);
        assert_eq!(address(r#""0x7f3056e1c0e8""#), Some(0x7f30_56e1_c0e8));
        assert_eq!(address(r#""0xffffffffffffffff""#), Some(u64::MAX));
        assert_eq!(address(r#""0x1ffffffffffffffff""#), None, "17 digits");
        assert_eq!(address(r#""0x""#), None);
        assert_eq!(
            address(r#""0xABC""#),
            None,
            "uppercase goes to the general scanner"
        );
    }

    #[test]
    fn test_parse_clean_line_reads_ruby_lines_like_the_general_scanner() {
        for line in LINES {
            assert!(
                parse_clean_line(line).is_some(),
                "fast path should take {}",
                String::from_utf8_lossy(line)
            );
            assert_agrees(line);
        }
    }

    #[test]
    fn test_parse_clean_line_leaves_unusual_lines_to_the_general_scanner() {
        let unusual: [&[u8]; 7] = [
            br#"{"address":"0x10", "type":"STRING", "value":"a\"b", "memsize":40}"#,
            br##"{"address":"0x10", "type":"CLASS", "name":"#<Class:"x">", "memsize":40}"##,
            br#"{"address":"0x10","type":"STRING"}"#,
            br#"{"address":"0x10", "type":"STRING", "future":{"a":1}}"#,
            b"{\"address\":\"0x10\", \"type\":\"STRING\", \"method\":\"caf\xc3\xa9\"}",
            br#"{"address":"0x10", "type":"STRING"} "#,
            br#"{"type":"STRING"}"#,
        ];
        for line in unusual {
            assert!(
                parse_clean_line(line).is_none(),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
    }

    #[test]
    fn test_parse_clean_line_agrees_on_mutated_lines() {
        let mut state = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let interesting = [
            b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b' ', b'0', b'x', 0xc3,
        ];
        for _ in 0..50_000 {
            let mut line = LINES[(next() % LINES.len() as u64) as usize].to_vec();
            for _ in 0..1 + next() % 3 {
                let position = (next() % (line.len() as u64 + 1)) as usize;
                let byte = if next().is_multiple_of(2) {
                    interesting[(next() % interesting.len() as u64) as usize]
                } else {
                    next() as u8
                };
                match next() % 3 {
                    0 if position < line.len() => line[position] = byte,
                    1 => line.insert(position, byte),
                    _ if position < line.len() => {
                        line.remove(position);
                    }
                    _ => {}
                }
            }
            assert_agrees(&line);
        }
    }
}
