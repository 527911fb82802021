//! Ctrl-C and SIGTERM: stop cleanly, so the namespaces and daemons are
//! removed by their guards instead of leaking. The flag is the lab's
//! (`tortie_ctl::lab::interrupt`), so the waits inside a lab the
//! benchmark builds stop too.

use anyhow::Result;
use tortie_ctl::lab::interrupt::{install_with, Handler};

pub use tortie_ctl::lab::interrupt::check;

/// Routes SIGINT, SIGTERM and SIGHUP to the stop flag; the daemons the
/// benchmark started are left to its guards (no forwarding).
pub fn install() -> Result<()> {
    install_with(Handler {
        who: "bench".into(),
        leftover: "namespaces may be left: ip netns list | grep -E '^(tb|tl-b)'".into(),
        forward: false,
    })
}
