//! `heapfleet token`: a new access token and the config entry that accepts it.

use std::io::Read;
use std::process::ExitCode;

use anyhow::Context;
use heapfleet_service::auth::hash_token;

use crate::cli::TokenArgs;
use crate::output::{Format, print_json, print_line};

/// Random bytes in a token: 256 bits, beyond guessing.
const TOKEN_BYTES: usize = 32;

pub(crate) fn run(args: &TokenArgs, format: Format) -> anyhow::Result<ExitCode> {
    if args.tenant.is_empty() {
        anyhow::bail!("--tenant must not be empty");
    }
    let token = new_token()?;
    let sha256 = hash_token(&token);
    match format {
        Format::Json => print_json(&serde_json::json!({
            "tenant": args.tenant,
            "role": args.role,
            "token": token,
            "sha256": sha256,
        }))?,
        Format::Table => print_line(&format!(
            "token (give it to the client as --token or HEAPFLEET_TOKEN; it is not stored):\n  \
             {token}\n\nfor the servers' config:\n[[auth.tokens]]\ntenant = {tenant:?}\n\
             role = {role:?}\nsha256 = {sha256:?}",
            tenant = args.tenant,
            role = args.role,
        ))?,
    }
    Ok(ExitCode::SUCCESS)
}

/// A new token: `hf_` and 64 hex digits from the system's random source.
fn new_token() -> anyhow::Result<String> {
    let mut bytes = [0u8; TOKEN_BYTES];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("cannot read random bytes from /dev/urandom")?;
    Ok(format!(
        "hf_{}",
        bytes
            .iter()
            .map(|byte| format!("{byte:02x}"))
            .collect::<String>()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_new_token_is_random_and_well_formed() {
        let first = new_token().unwrap();
        let second = new_token().unwrap();
        assert_ne!(first, second);
        assert_eq!(first.len(), 3 + 2 * TOKEN_BYTES);
        assert!(first.starts_with("hf_"));
    }
}
