//! A: `kjump check`, and the checks every command that jumps runs first.

use crate::kernel::{hibernation_kernel, unload_after_jump};
use crate::keys::refuse_clear_image_of_encrypted_disks;
use crate::settings::Settings;
use kjump::handoff::orders::Orders;
use kjump::host::check as host_check;
use kjump::load::jump;
use kjump::target::in_use;
use kjump::Error;

pub(crate) fn run_checks(s: &Settings, quiet: bool) -> Result<(), Error> {
    let mut items = host_check::run(&host_check::Config { kernel: s.kernel.clone(), initrd: s.initrd.clone(), region_size: s.region_size });
    items.extend(kjump::host::drivers::check_target(&s.kernel, s.target.as_deref()));
    if !quiet {
        println!("kjump check:");
        print!("{}", host_check::report(&items));
    }
    if let Some(bad) = items.iter().find(|i| !i.ok) {
        return Err(Error::Msg(format!("this machine cannot hibernate with kjump: {}", bad.text)));
    }
    Ok(())
}

pub(crate) fn cmd_check(s: &Settings, live: bool) -> Result<(), Error> {
    run_checks(s, false).map_err(|e| Error::Msg(format!("check: {e}")))?;
    refuse_clear_image_of_encrypted_disks(s, &in_use::collect()?).map_err(|e| Error::Msg(format!("check: {e}")))?;
    if let kjump::host::config::Encrypt::Tpm2(pcrs) = &s.encrypt {
        let tpm = kjump::host::tpm::check().map_err(|e| Error::Msg(format!("check: {e}")))?;
        println!("kjump check: encrypt = tpm2: {tpm}; keys sealed under PCRs sha256:{}", pcrs.list());
    }
    println!("kjump check: this machine can hibernate with kjump");
    if !live {
        return Ok(());
    }
    let _lock = kjump::host::lock::take("check --jump")?;
    let loaded = jump::load_hibernation_kernel(&hibernation_kernel(s, &Orders::Roundtrip.to_string(), None)?)?;
    println!("kjump: loaded the hibernation kernel in {} ({} segments); jumping to it", loaded.region, loaded.segments);
    let away = jump::jump_to_loaded();
    unload_after_jump();
    let away = away?;
    println!("kjump: back in A after {:.2} s (round trip A -> B -> A)", away.as_secs_f64());
    Ok(())
}
