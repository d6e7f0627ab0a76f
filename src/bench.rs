//! `intake bench`: parse → map → validate throughput next to a raw CSV read of the same file.
//!
//! Both passes run in this process on the same file, one after the other, so the ratio between
//! them is what to compare across machines. Peak memory is best read from the outside
//! (`/usr/bin/time -v intake bench …`), see BENCHMARKS.md.

use std::fs::File;
use std::io::BufReader;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::Context;

/// Arguments of `intake bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// The import template (JSON).
    #[arg(long, short = 't', value_name = "TEMPLATE.json")]
    template: PathBuf,
    /// The CSV file to read (e.g. made by shared/bench/gen_rows.py).
    #[arg(value_name = "FILE")]
    file: PathBuf,
    /// Skip the raw csv-crate baseline pass.
    #[arg(long)]
    no_baseline: bool,
}

struct Pass {
    rows: u64,
    elapsed: Duration,
}

impl Pass {
    fn print(&self, label: &str, bytes: u64) {
        let seconds = self.elapsed.as_secs_f64().max(f64::EPSILON);
        println!(
            "{label:<28} {:>10} rows  {:>7.3} s  {:>12.0} rows/s  {:>8.1} MB/s",
            self.rows,
            seconds,
            self.rows as f64 / seconds,
            bytes as f64 / 1e6 / seconds
        );
    }
}

/// Runs the benchmark and prints one line per pass and the ratio.
pub fn run(args: &BenchArgs) -> anyhow::Result<()> {
    let template = crate::load_template(&args.template)?;
    let bytes = std::fs::metadata(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?
        .len();
    let open = || -> anyhow::Result<BufReader<File>> {
        let file = File::open(&args.file)
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        Ok(BufReader::with_capacity(1 << 16, file))
    };

    println!("file: {} ({:.1} MB)", args.file.display(), bytes as f64 / 1e6);
    let baseline = if args.no_baseline {
        None
    } else {
        let start = Instant::now();
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(template.delimiter.as_bytes().first().copied().unwrap_or(b','))
            .has_headers(template.has_header)
            .flexible(true)
            .from_reader(open()?);
        let mut record = csv::ByteRecord::new();
        let mut rows = 0u64;
        while reader.read_byte_record(&mut record)? {
            rows += 1;
        }
        let pass = Pass { rows, elapsed: start.elapsed() };
        pass.print("raw csv ByteRecord read", bytes);
        Some(pass)
    };

    let start = Instant::now();
    let report = intake_engine::check_file(
        &template,
        &args.file.display().to_string(),
        open()?,
        |_| {},
        |_| {},
    )?;
    let pass = Pass { rows: report.rows_read, elapsed: start.elapsed() };
    pass.print("parse → map → validate", bytes);
    println!("valid {} rejected {}", report.valid, report.rejected);
    if let Some(baseline) = baseline {
        println!(
            "pipeline / raw read time: {:.2}x",
            pass.elapsed.as_secs_f64() / baseline.elapsed.as_secs_f64().max(f64::EPSILON)
        );
    }
    Ok(())
}
