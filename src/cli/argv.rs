//! Options written before the command name, as bitcoin-cli users type them
//! (`quarry --network dev --datadir /tmp/a rpc getblockcount`): clap only takes a command's
//! options after its name, so they are moved there before parsing. Only options the command
//! itself knows are moved; anything else is left where it is for clap to refuse with its own
//! message.

use clap::CommandFactory;
use std::ffi::OsString;

/// `args` (program name first) with the options before the command name moved to just after
/// it, when every one of them is an option of that command; otherwise `args` unchanged.
pub fn hoist_leading_options(args: Vec<OsString>) -> Vec<OsString> {
    let root = super::Cli::command();
    let words: Vec<Option<&str>> = args.iter().map(|a| a.to_str()).collect();
    // Nothing to do unless the first word after the program is an option (and not
    // --help/--version, which belong to the program).
    match words.get(1).copied().flatten() {
        Some(w) if w.starts_with('-') && w != "--" && !is_root_flag(w) => {}
        _ => return args,
    }
    // Try each word that names a command: the options before it must all be its own, each
    // followed by its value when it takes one.
    for (at, word) in words.iter().enumerate().skip(2) {
        let Some(word) = word else { return args };
        let Some(sub) = root.find_subcommand(word) else { continue };
        if leading_options_fit(&words[1..at], sub) {
            let mut out = Vec::with_capacity(args.len());
            out.push(args[0].clone());
            out.push(args[at].clone());
            out.extend(args[1..at].iter().cloned());
            out.extend(args[at + 1..].iter().cloned());
            return out;
        }
    }
    args
}

fn is_root_flag(w: &str) -> bool {
    matches!(w, "-h" | "--help" | "-V" | "--version")
}

/// True if `words` is a sequence of `sub`'s options, each with its value where it takes one.
fn leading_options_fit(words: &[Option<&str>], sub: &clap::Command) -> bool {
    let mut i = 0;
    while i < words.len() {
        let Some(w) = words[i] else { return false };
        let Some((arg, inline_value)) = find_option(sub, w) else { return false };
        i += 1;
        if arg.get_action().takes_values() && !inline_value {
            // The value is the next word (which may itself start with '-': a negative number).
            if i >= words.len() {
                return false;
            }
            i += 1;
        }
    }
    true
}

/// The option `w` names among `sub`'s arguments, and whether `w` carries its value
/// (`--network=dev`, `-n5`).
fn find_option<'a>(sub: &'a clap::Command, w: &str) -> Option<(&'a clap::Arg, bool)> {
    if let Some(long) = w.strip_prefix("--") {
        let (name, inline) = match long.split_once('=') {
            Some((n, _)) => (n, true),
            None => (long, false),
        };
        let arg = sub.get_arguments().find(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
        })?;
        return Some((arg, inline));
    }
    let mut chars = w.strip_prefix('-')?.chars();
    let short = chars.next()?;
    let arg = sub.get_arguments().find(|a| a.get_short() == Some(short))?;
    Some((arg, chars.next().is_some()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hoist(s: &str) -> String {
        let args = s.split(' ').map(OsString::from).collect();
        hoist_leading_options(args).iter().map(|a| a.to_str().unwrap()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn options_before_the_command_move_after_its_name() {
        assert_eq!(
            hoist("quarry --network dev --datadir /tmp/a rpc getblockcount"),
            "quarry rpc --network dev --datadir /tmp/a getblockcount"
        );
        assert_eq!(
            hoist("quarry --network=dev rpc getblockhash -1"),
            "quarry rpc --network=dev getblockhash -1"
        );
        assert_eq!(hoist("quarry --dir /tmp/t testnet status"), "quarry testnet --dir /tmp/t status");
        assert_eq!(hoist("quarry --json --dir x testnet status"), "quarry testnet --json --dir x status");
        // A value that is also a command's name is taken as the value.
        assert_eq!(hoist("quarry --datadir node node --mine"), "quarry node --datadir node --mine");
    }

    #[test]
    fn anything_else_is_left_for_clap() {
        for s in [
            "quarry rpc --network dev getblockcount",
            "quarry --help",
            "quarry --version rpc",
            "quarry --no-such-option rpc getblockcount",
            "quarry --network",
            "quarry --dir x rpc getblockcount",
        ] {
            assert_eq!(hoist(s), s, "{s}");
        }
    }

    #[test]
    fn hoisted_arguments_parse_as_written_after_the_command() {
        use clap::Parser;
        let args: Vec<OsString> = "quarry --network dev --datadir /tmp/a rpc getblockcount"
            .split(' ')
            .map(OsString::from)
            .collect();
        let cli = super::super::Cli::try_parse_from(hoist_leading_options(args)).unwrap();
        let super::super::Command::Rpc(rpc) = cli.command else { panic!("rpc") };
        assert_eq!(rpc.data.network, crate::consensus::Network::Dev);
        assert_eq!(rpc.data.datadir.as_deref(), Some(std::path::Path::new("/tmp/a")));
        assert_eq!(rpc.call.method, "getblockcount");
    }
}
