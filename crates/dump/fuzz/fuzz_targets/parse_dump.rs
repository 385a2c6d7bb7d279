//! Fuzz target: no input, fed in any chunking, plain or as a gzip stream, makes the parser panic.
#![no_main]

use heapfleet_dump::{DumpParser, ParseOptions, Record, Visitor, parse_line, parse_reader};
use libfuzzer_sys::fuzz_target;

/// Touches every lazily parsed part of a record so its code runs too.
struct Touch(u64);

impl Visitor for Touch {
    fn record(&mut self, line_number: u64, record: &Record<'_>) {
        self.0 = self.0.wrapping_add(line_number);
        match record {
            Record::Object(object) => {
                self.0 = self.0.wrapping_add(object.references.addresses().count() as u64);
                for text in [object.file, object.method, object.value, object.name].into_iter().flatten() {
                    self.0 = self.0.wrapping_add(text.decode().len() as u64);
                }
            }
            Record::Root(root) => self.0 = self.0.wrapping_add(root.references.addresses().count() as u64),
            Record::Shape(_) => {}
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let _ = parse_line(data);
    let options = ParseOptions { max_line_bytes: 4096, ..ParseOptions::default() };
    let mut touch = Touch(0);
    let _ = parse_reader(data, &options, &mut touch);
    // The same bytes in small chunks must not panic either (lines straddling chunks).
    let chunk = 1 + data.first().copied().unwrap_or(0) as usize % 17;
    let mut parser = DumpParser::new(options.clone());
    let mut failed = false;
    for piece in data.chunks(chunk) {
        if parser.feed(piece, &mut touch).is_err() {
            failed = true;
            break;
        }
    }
    if !failed {
        let _ = parser.finish(&mut touch);
    }
    let strict = ParseOptions { strict: true, ..options.clone() };
    let _ = parse_reader(data, &strict, &mut touch);
    // A decompressed-size limit the input crosses (gzip input expands past it).
    let limited = ParseOptions { max_dump_bytes: Some(data.len() as u64 / 2), ..options };
    let _ = parse_reader(data, &limited, &mut touch);
});
