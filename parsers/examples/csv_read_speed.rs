//! Times [`CsvReader`] against a raw `csv_core` read of the same file, in rows per second.
//!
//! ```text
//! python3 bench/gen_rows.py 1000000 /tmp/rows.csv
//! cargo run --release -p intake-parsers --example csv_read_speed -- /tmp/rows.csv [ENCODING]
//! ```
//! With an encoding (e.g. `windows-1252`) the file is decoded as that, to time transcoding.
//! A measurement, not a test: nothing here asserts a time.

use std::error::Error;
use std::fs::File;
use std::io::Read;
use std::time::Instant;

use csv_core::ReadRecordResult;
use intake_parsers::{CsvOptions, CsvReader, ReadOutcome, Record};

fn main() -> Result<(), Box<dyn Error>> {
    let path = std::env::args().nth(1).ok_or("usage: csv_read_speed FILE.csv [ENCODING]")?;
    let encoding = std::env::args().nth(2).unwrap_or_else(|| "utf-8".to_owned()).parse()?;
    let options = CsvOptions { encoding, ..CsvOptions::default() };
    for round in 1..=3 {
        let (rows, seconds) = raw_csv_core(&path)?;
        report(round, "csv-core raw", rows, seconds);
        let (rows, seconds) = csv_reader(&path, &options)?;
        report(round, "CsvReader", rows, seconds);
    }
    Ok(())
}

fn report(round: u32, what: &str, rows: u64, seconds: f64) {
    let rate = rows as f64 / seconds / 1e6;
    println!("round {round}: {what:<13} {rows} rows in {seconds:.3} s = {rate:.2} M rows/s");
}

fn csv_reader(path: &str, options: &CsvOptions) -> Result<(u64, f64), Box<dyn Error>> {
    let start = Instant::now();
    let mut reader = CsvReader::new(path, File::open(path)?, options.clone())?;
    let mut record = Record::new();
    let (mut rows, mut rejected, mut bytes) = (0u64, 0u64, 0usize);
    loop {
        match reader.read_record(&mut record)? {
            ReadOutcome::Record => {
                rows += 1;
                bytes += record.get(0).map_or(0, str::len);
            }
            ReadOutcome::Rejected(_) => rejected += 1,
            ReadOutcome::End => break,
        }
    }
    if rejected > 0 || bytes == 0 {
        eprintln!("{rejected} rejected rows, {bytes} bytes in column 1");
    }
    Ok((rows, start.elapsed().as_secs_f64()))
}

fn raw_csv_core(path: &str) -> Result<(u64, f64), Box<dyn Error>> {
    let start = Instant::now();
    let mut file = File::open(path)?;
    let mut parser = csv_core::Reader::new();
    let mut input = vec![0u8; 64 * 1024];
    let mut output = vec![0u8; 4096];
    let mut ends = vec![0usize; 64];
    let (mut len, mut pos, mut rows) = (0usize, 0usize, 0u64);
    loop {
        if pos == len {
            len = file.read(&mut input)?;
            pos = 0;
        }
        let (result, read, _, _) = parser.read_record(&input[pos..len], &mut output, &mut ends);
        pos += read;
        match result {
            ReadRecordResult::Record => rows += 1,
            ReadRecordResult::End => break,
            ReadRecordResult::InputEmpty => {}
            ReadRecordResult::OutputFull | ReadRecordResult::OutputEndsFull => {
                return Err("a record too large for the benchmark's buffers".into());
            }
        }
    }
    Ok((rows.saturating_sub(1), start.elapsed().as_secs_f64())) // minus the header
}
