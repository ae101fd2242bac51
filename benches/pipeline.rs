//! `make bench-host` (`cargo bench --bench pipeline`): kjump's image
//! pipeline on the host, without emulation, against the `lz4` and
//! `gzip -1` command-line tools on the same bytes.
//!
//! The sample is the page mix of `make bench`: a third random, a third
//! repeated text, a third zero pages (`BENCH_HOST_MIB`, default 384 MiB).
//! kjump's encoder works as B's workers do (`pipeline::sort_pages`): each
//! 256 pages of memory become one chunk, zero pages listed without data,
//! the others compressed and checksummed. Its
//! decoder checks and unpacks every chunk as D does. The "sealed" rows
//! encrypt and authenticate each chunk (XChaCha20-Poly1305, image format
//! 4) as B does with `encrypt` set, and open it as D does. One core each;
//! MB/s are of the sample's bytes.

use std::io::Write as _;
use std::process::{Command, Stdio};
use std::time::Instant;

use std::sync::Arc;

use kjump::image::{decode_chunk, parse_chunk_header, Chain, ChunkBufs, ChunkEncoder, Compression, Sealer, PAGE};
use kjump::save::pipeline::{sort_pages, PAGES_PER_JOB};

fn sample(mib: usize) -> Vec<u8> {
    let third = mib * 1024 * 1024 / 3 / PAGE * PAGE;
    let mut v = Vec::with_capacity(3 * third);
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    for _ in 0..third / 8 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    let line = b"kjump benchmark: repeated text, as in logs and buffers 0123456789\n";
    v.extend(line.iter().cycle().take(third));
    v.resize(3 * third, 0);
    // Interleave by 64-page blocks so chunks see a mix, as memory does.
    let block = 64 * PAGE;
    let n = third / block;
    let mut mixed = Vec::with_capacity(v.len());
    for i in 0..n {
        for part in 0..3 {
            let at = part * third + i * block;
            mixed.extend_from_slice(&v[at..at + block]);
        }
    }
    mixed
}

fn sealer() -> Sealer {
    let key = kjump::image::seal::DataKey::from_bytes([0x42; 32]);
    Sealer { keys: Arc::new(kjump::image::seal::Keys::derive(&key, kjump::image::seal::ImageId([1; 16]))), salt: [2; 16] }
}

fn encode(data: &[u8], compression: Compression, sealer: Option<&Sealer>) -> (Vec<u8>, f64) {
    let start = Instant::now();
    let mut enc = ChunkEncoder::new(compression, sealer.cloned());
    let mut chain = Chain::default();
    let mut out = Vec::with_capacity(data.len() / 2);
    let (mut runs, mut zero_runs) = (Vec::new(), Vec::new());
    let mut pages: Vec<u8> = Vec::with_capacity(PAGES_PER_JOB * PAGE);
    // As B's workers do: each job of memory sorted into one chunk.
    for (index, job) in data.chunks(PAGES_PER_JOB * PAGE).enumerate() {
        runs.clear();
        zero_runs.clear();
        pages.clear();
        sort_pages(job, (index * PAGES_PER_JOB) as u64, None, &mut runs, &mut zero_runs, &mut pages);
        chain.add(&enc.encode(index as u64, &runs, &zero_runs, &pages, &mut out));
    }
    std::hint::black_box(chain.value());
    (out, start.elapsed().as_secs_f64())
}

fn decode(image: &[u8], sealer: Option<&Sealer>) -> f64 {
    let start = Instant::now();
    let mut bufs = ChunkBufs::default();
    let mut at = 0;
    let mut index = 0;
    while at < image.len() {
        let info = parse_chunk_header(&image[at..], index).expect("chunk header");
        decode_chunk(&image[at..at + info.disk_len], &info, &mut bufs, sealer).expect("chunk");
        std::hint::black_box(&bufs.pages);
        at += info.disk_len;
        index += 1;
    }
    start.elapsed().as_secs_f64()
}

/// Runs `cmd args` with `input` on stdin; (bytes out, seconds), or None
/// when the tool is missing.
fn tool(cmd: &str, args: &[&str], input: &std::path::Path) -> Option<(u64, f64)> {
    let file = std::fs::File::open(input).ok()?;
    let start = Instant::now();
    let mut child = Command::new(cmd).args(args).stdin(file).stdout(Stdio::piped()).spawn().ok()?;
    let mut out = child.stdout.take()?;
    let n = std::io::copy(&mut out, &mut std::io::sink()).ok()?;
    child.wait().ok()?.success().then(|| (n, start.elapsed().as_secs_f64()))
}

fn main() {
    // `cargo bench` passes --bench; nothing else is understood.
    let mib: usize = std::env::var("BENCH_HOST_MIB").ok().and_then(|v| v.parse().ok()).unwrap_or(384);
    let data = sample(mib);
    let mb = data.len() as f64 / 1e6;
    let path = std::env::temp_dir().join(format!("kjump-bench-sample-{}", std::process::id()));
    std::fs::File::create(&path).and_then(|mut f| f.write_all(&data)).expect("writing the sample");

    println!("## Image pipeline on the host ({} MiB sample: 1/3 random, 1/3 text, 1/3 zero pages; one core)\n", data.len() >> 20);
    println!("| pipeline | compress MB/s | decompress MB/s | bytes out | of input |");
    println!("|---|---|---|---|---|");
    let sealed = sealer();
    for (name, c, s) in [
        ("kjump lz4", Compression::Lz4, None),
        ("kjump lz4, sealed", Compression::Lz4, Some(&sealed)),
        ("kjump deflate-1", Compression::Deflate, None),
        ("kjump none", Compression::None, None),
        ("kjump none, sealed", Compression::None, Some(&sealed)),
    ] {
        let (img, enc_s) = encode(&data, c, s);
        let dec_s = decode(&img, s);
        println!("| {name} | {:.0} | {:.0} | {} | {:.1} % |", mb / enc_s, mb / dec_s, img.len(), 100.0 * img.len() as f64 / data.len() as f64);
    }
    for (name, cmd, args) in [("lz4 -1 (CLI)", "lz4", ["-1", "-c"]), ("gzip -1 (CLI)", "gzip", ["-1", "-c"])] {
        let Some((n, enc_s)) = tool(cmd, &args, &path) else {
            println!("| {name} | not installed (make deps installs it) | | | |");
            continue;
        };
        let packed = std::env::temp_dir().join(format!("kjump-bench-packed-{}", std::process::id()));
        let _ = Command::new("sh").arg("-c").arg(format!("{cmd} -1 -c < {} > {}", path.display(), packed.display())).status();
        let dec = tool(cmd, &["-d", "-c"], &packed).map(|(_, s)| format!("{:.0}", mb / s)).unwrap_or_else(|| "–".into());
        let _ = std::fs::remove_file(&packed);
        println!("| {name} | {:.0} | {dec} | {n} | {:.1} % |", mb / enc_s, 100.0 * n as f64 / data.len() as f64);
    }
    println!("\nkjump leaves zero pages out before compressing (as B does); the tools see every byte.");
    let _ = std::fs::remove_file(&path);
}
