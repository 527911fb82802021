//! The `tortie-cni` binary: reads the `CNI_*` environment and stdin, runs
//! the command, prints the result or a CNI error JSON (exit status 1).

use std::io::{Read, Write};

use tortie_cni::config::Env;
use tortie_cni::error::{code, CniError};

fn main() {
    let env = Env::from_process();
    let mut stdin = Vec::new();
    let read = if env.command == "VERSION" && atty_stdin_is_empty() {
        Ok(0)
    } else {
        std::io::stdin().read_to_end(&mut stdin)
    };
    let version = serde_json::from_slice::<serde_json::Value>(&stdin)
        .ok()
        .and_then(|v| v["cniVersion"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "1.1.0".into());
    let result = match read {
        Err(e) => Err(CniError::new(code::IO, format!("reading stdin: {e}"))),
        Ok(_) => match tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
        {
            Ok(rt) => rt.block_on(tortie_cni::run(&env, &stdin)),
            Err(e) => Err(CniError::new(
                code::IO,
                format!("starting the runtime: {e}"),
            )),
        },
    };
    let mut out = std::io::stdout().lock();
    match result {
        Ok(Some(v)) => {
            let _ = writeln!(out, "{v}");
        }
        Ok(None) => {}
        Err(e) => {
            let _ = writeln!(out, "{}", e.to_json(&version));
            let _ = out.flush();
            std::process::exit(1);
        }
    }
}

/// VERSION may be run without stdin; never block on a terminal.
fn atty_stdin_is_empty() -> bool {
    nix::unistd::isatty(std::io::stdin()).unwrap_or(false)
}
