//! define, create, edit, dumpxml, undefine, attach-device, detach-device.

use std::{
    path::{Path, PathBuf},
    process::Command,
};

use zbus::Variant;

use super::{
    Ctx,
    api::{MANAGER_PATH, domain as d, manager as m, opts},
    args::DeviceArgs,
    domains::{self, read_input},
    error::{Error, Kind, Result},
    polkit::Agent,
    progress,
};

pub async fn define(ctx: &Ctx, file: &Path) -> Result<()> {
    let xml = read_input(file)?;
    let path = define_xml(ctx, &xml).await?;
    let info = domains::info(ctx.bus(), &path).await?;
    println!("{} defined ({})", info.name, info.uuid);
    Ok(())
}

async fn define_xml(ctx: &Ctx, xml: &str) -> Result<String> {
    let bus = ctx.bus();
    let _agent = Agent::start(bus.interactive);
    let path = bus
        .change(&m::DEFINE_DOMAIN, MANAGER_PATH, &(xml.to_owned(), opts([])))
        .await?;
    Ok(path.to_string())
}

pub async fn create(ctx: &Ctx, file: &Path, paused: bool) -> Result<()> {
    let xml = read_input(file)?;
    let bus = ctx.bus();
    let _agent = Agent::start(bus.interactive);
    let o = opts([("paused", Variant::from(paused))]);
    let path = bus
        .change(&m::CREATE_DOMAIN, MANAGER_PATH, &(xml, o))
        .await?;
    let info = domains::info(bus, path.as_str()).await?;
    println!("{} started ({})", info.name, info.uuid);
    Ok(())
}

pub async fn dumpxml(ctx: &Ctx, domain: &str, inactive: bool, secure: bool) -> Result<()> {
    let path = domains::lookup(ctx.bus(), domain).await?;
    let o = opts([
        ("inactive", Variant::from(inactive)),
        ("secure", Variant::from(secure)),
    ]);
    let xml = ctx.bus().call(&d::GET_XML, &path, &(o,)).await?;
    if ctx.json {
        super::output::json(&serde_json::json!({ "xml": xml }));
    } else {
        print!("{xml}");
        if !xml.ends_with('\n') {
            println!();
        }
    }
    Ok(())
}

pub async fn undefine(
    ctx: &Ctx,
    domain: &str,
    managed_save: bool,
    snapshots_metadata: bool,
    nvram: bool,
) -> Result<()> {
    let (path, domain) = domains::resolve(ctx.bus(), domain).await?;
    let o = opts([
        ("managed-save", Variant::from(managed_save)),
        ("snapshots-metadata", Variant::from(snapshots_metadata)),
        ("nvram", Variant::from(nvram)),
    ]);
    let bus = ctx.bus();
    let _agent = Agent::start(bus.interactive);
    bus.change(&d::UNDEFINE, &path, &(o,)).await?;
    println!("{domain} undefined");
    Ok(())
}

pub async fn device(ctx: &Ctx, a: &DeviceArgs, attach: bool) -> Result<()> {
    let xml = read_input(&a.file)?;
    let path = domains::lookup(ctx.bus(), &a.domain).await?;
    let o = opts([
        ("live", Variant::from(a.live)),
        ("config", Variant::from(a.config)),
    ]);
    let (method, label, done) = if attach {
        (&d::ATTACH_DEVICE, "attaching a device", "attached")
    } else {
        (&d::DETACH_DEVICE, "detaching a device", "detached")
    };
    let bus = ctx.bus();
    progress::run(
        ctx,
        &path,
        &a.domain,
        label,
        bus.change(method, &path, &(xml, o)),
    )
    .await?;
    println!("device {done}");
    Ok(())
}

/// The comment that carries the daemon's refusal into the re-opened file.
const MARK: &str = "<!-- virtbusctl:";

/// Edit the persistent XML as `virsh edit` does: open `$VISUAL`/`$EDITOR` on it; an
/// unchanged file changes nothing; a refused one is re-opened with the daemon's error at the
/// top, until it is accepted, left unchanged, or emptied.
pub async fn edit(ctx: &Ctx, domain: &str) -> Result<()> {
    let (path, domain) = domains::resolve(ctx.bus(), domain).await?;
    let domain = domain.as_str();
    let o = opts([
        ("inactive", Variant::from(true)),
        ("secure", Variant::from(true)),
    ]);
    let original = ctx.bus().call(&d::GET_XML, &path, &(o,)).await?;
    edit_loop(domain, original, async |xml: String| {
        define_xml(ctx, &xml).await.map(|_| ())
    })
    .await
}

/// The editing loop of every `edit`: `define` is tried on each saved text; `name` names the
/// object in messages.
pub async fn edit_loop(
    name: &str,
    original: String,
    mut define: impl AsyncFnMut(String) -> Result<()>,
) -> Result<()> {
    let domain = name;
    let file = TempFile::new(domain, &original)?;
    let mut last = original.clone();
    loop {
        run_editor(&file.path)?;
        let text = std::fs::read_to_string(&file.path)?;
        let xml = strip_mark(&text);
        if xml.trim().is_empty() {
            println!("edit abandoned; {domain} is unchanged");
            return Ok(());
        }
        if xml == strip_mark(&last) {
            if xml == original {
                println!("{domain}'s XML was not changed");
                return Ok(());
            }
            return Err(Error::new(
                Kind::Invalid,
                format!(
                    "edit abandoned (file left unchanged after the refusal); {domain} is unchanged"
                ),
            ));
        }
        match define(xml.clone()).await {
            Ok(()) => {
                println!("{domain} redefined");
                return Ok(());
            }
            Err(e) => {
                let why = e.message.replace("--", "- -");
                eprintln!(
                    "virtbusctl: the daemon refused the definition: {}",
                    e.message
                );
                let text = format!(
                    "{MARK} the daemon refused this definition:\n  {why}\n  \
                     Fix it and save, or empty the file to give up. -->\n{xml}"
                );
                std::fs::write(&file.path, &text)?;
                last = text;
            }
        }
    }
}

/// The text without the comment this client added at its top.
fn strip_mark(text: &str) -> String {
    match text
        .strip_prefix(MARK)
        .and_then(|rest| rest.split_once("-->"))
    {
        Some((_, after)) => after.strip_prefix('\n').unwrap_or(after).to_owned(),
        None => text.to_owned(),
    }
}

/// Run the user's editor on `file`, through the shell as git and virsh do (so `EDITOR`
/// may carry arguments).
fn run_editor(file: &Path) -> Result<()> {
    let editor = ["VISUAL", "EDITOR"]
        .iter()
        .filter_map(|v| std::env::var(v).ok())
        .find(|v| !v.trim().is_empty())
        .unwrap_or_else(|| "vi".to_owned());
    let status = Command::new("sh")
        .arg("-c")
        .arg(format!("{editor} \"$@\""))
        .arg(&editor)
        .arg(file)
        .status()
        .map_err(|e| Error::failed(format!("cannot run the editor {editor}: {e}")))?;
    if !status.success() {
        return Err(Error::failed(format!(
            "the editor {editor} failed ({status}); nothing changed"
        )));
    }
    Ok(())
}

/// A private file for the editor, removed with its directory at the end.
struct TempFile {
    dir: PathBuf,
    path: PathBuf,
}

impl TempFile {
    fn new(domain: &str, content: &str) -> Result<Self> {
        use std::os::unix::fs::DirBuilderExt;
        let stamp = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let dir = std::env::temp_dir().join(format!("virtbusctl-{}-{stamp}", std::process::id()));
        std::fs::DirBuilder::new().mode(0o700).create(&dir)?;
        let safe: String = domain
            .chars()
            .map(|c| {
                if c.is_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}.xml"));
        std::fs::write(&path, content)?;
        Ok(Self { dir, path })
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
