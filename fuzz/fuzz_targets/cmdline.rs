//! The kernel command line of B and D (`kjump::handoff::cmdline::parse`, what
//! `kjump-init` reads from `/proc/cmdline`), and what is parsed from its
//! values: the target (`kjump::target::parse`), the compression, and the
//! console arguments A hands on to B (`kjump::load::jump::console_args`).

#![no_main]

use kjump::handoff::cmdline;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // `/proc/cmdline` is read with `read_to_string`: only UTF-8 gets here.
    let Ok(line) = std::str::from_utf8(data) else { return };
    for word in cmdline::words(line) {
        let Ok(word) = word else { break };
        assert!(!word.is_empty());
        let _ = cmdline::split_param(word);
    }
    let _ = kjump::load::jump::console_args(line);
    let Ok(p) = cmdline::parse(line) else { return };
    if let Some(region) = p.region {
        assert!(!region.is_empty());
    }
    if let (Some(pfn), Some(entry)) = (p.jump_buf_pfn, p.jump_back_entry) {
        assert_eq!(entry / 4096, pfn);
    }
    if let Some(t) = p.target {
        let _ = kjump::target::parse(t);
    }
    if let Some(c) = p.compress {
        let _ = kjump::image::Compression::parse(c);
    }
    // Orders that parse read back the same from the words they write.
    if let Ok(orders) = kjump::handoff::orders::Orders::from_params(&p) {
        let text = orders.to_string();
        let again = cmdline::parse(&text).map(|q| kjump::handoff::orders::Orders::from_params(&q));
        assert_eq!(again, Ok(Ok(orders)), "{text}");
    }
});
