//! The shell completions and the man page, generated from the argument definitions (meson
//! runs the hidden `completions` and `manpage` commands at build time).

use std::process::ExitCode;

use clap_complete::Shell;

/// Domain names for the shells to offer: bash and zsh completion functions call this
/// (`virtbusctl list --all --name`) where a domain is expected.
const BASH_DOMAINS: &str = r#"
# Domain names where a command expects one (generated scripts know only the grammar).
_virtbusctl_domains() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    local cmd
    for w in "${COMP_WORDS[@]:1:COMP_CWORD-1}"; do
        case $w in -*) ;; *) cmd=$w; break ;; esac
    done
    case $cmd in
        status|edit|dumpxml|undefine|start|shutdown|reboot|reset|destroy|suspend|resume|\
        autostart|save|restore|attach-device|detach-device|events|stats)
            if [[ $COMP_CWORD -ge 2 && ${COMP_WORDS[COMP_CWORD-1]} == "$cmd" && $cur != -* ]]; then
                COMPREPLY=($(compgen -W "$(virtbusctl list --all --name 2>/dev/null)" -- "$cur"))
                return 0
            fi ;;
    esac
    _virtbusctl "$@"
}
complete -F _virtbusctl_domains -o bashdefault -o default virtbusctl
"#;

pub fn completions(shell: Shell) -> ExitCode {
    let mut cmd = super::args::command();
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut cmd, "virtbusctl", &mut out);
    let mut text = String::from_utf8_lossy(&out).into_owned();
    if shell == Shell::Bash {
        text.push_str(BASH_DOMAINS);
    }
    print!("{text}");
    ExitCode::SUCCESS
}

pub fn manpage() -> ExitCode {
    let cmd = super::args::command();
    let man = clap_mangen::Man::new(cmd);
    let mut out = Vec::new();
    if let Err(e) = man.render(&mut out) {
        eprintln!("virtbusctl: cannot render the man page: {e}");
        return ExitCode::FAILURE;
    }
    print!("{}", String::from_utf8_lossy(&out));
    ExitCode::SUCCESS
}
