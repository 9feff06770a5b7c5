//! vol list/info/create/clone/delete/wipe/resize/dumpxml/upload/download.

use std::{
    fs::File,
    os::fd::{AsFd, OwnedFd},
    path::Path,
};

use comfy_table::Cell;
use serde_json::json;
use zbus::Variant;

use super::{
    Ctx,
    api::{Opts, opts, pool as p, volume as v},
    args::{VolArgs, VolCommand},
    error::{Error, Kind, Result},
    objects::{self, PoolInfo, VolumeInfo},
    output::{self, bytes},
    polkit::Agent,
    progress,
    snapshot::escape,
};

pub async fn run(ctx: &Ctx, c: VolCommand) -> Result<()> {
    use VolCommand as C;
    match c {
        C::List { pool, name } => list(ctx, &pool, name).await,
        C::Info(a) => info(ctx, &a).await,
        C::Create {
            pool,
            volume,
            size,
            format,
            backing,
            backing_format,
            preallocation,
        } => {
            let xml = volume_xml(
                &volume,
                Some(size.0),
                format.as_deref(),
                backing.as_deref().map(|b| (b, backing_format.as_deref())),
            );
            create(ctx, &pool, &volume, xml, None, preallocation).await
        }
        C::Clone {
            pool,
            source,
            volume,
            format,
        } => {
            let xml = volume_xml(&volume, None, format.as_deref(), None);
            create(ctx, &pool, &volume, xml, Some(&source), None).await
        }
        C::Delete(a) => act(ctx, &a, &v::DELETE, "deleting", "deleted").await,
        C::Wipe(a) => act(ctx, &a, &v::WIPE, "wiping", "wiped").await,
        C::Resize {
            vol,
            size,
            delta,
            shrink,
            allocate,
        } => {
            let o = opts([
                ("delta", Variant::from(delta)),
                ("shrink", Variant::from(shrink)),
                ("allocate", Variant::from(allocate)),
            ]);
            let bus = ctx.bus();
            let (_, vi) = objects::volume(bus, &vol.pool, &vol.volume).await?;
            let _agent = Agent::start(bus.interactive);
            bus.change(&v::RESIZE, &vi.path, &(size.0, o)).await?;
            let now = objects::volume_at(bus, &vi.path).await?;
            println!("volume {} resized to {}", now.name, bytes(now.capacity));
            Ok(())
        }
        C::Dumpxml(a) => {
            let (_, vi) = objects::volume(ctx.bus(), &a.pool, &a.volume).await?;
            let xml = ctx.bus().call(&v::GET_XML, &vi.path, &(opts([]),)).await?;
            output::xml(ctx.json, &xml);
            Ok(())
        }
        C::Upload {
            vol,
            file,
            offset,
            length,
        } => transfer(ctx, &vol, &file, offset.0, length.0, true).await,
        C::Download {
            vol,
            file,
            offset,
            length,
        } => transfer(ctx, &vol, &file, offset.0, length.0, false).await,
    }
}

async fn list(ctx: &Ctx, pool: &str, names: bool) -> Result<()> {
    let bus = ctx.bus();
    let pool = objects::active_pool(bus, pool).await?;
    let vols = objects::volumes(bus, &pool.path).await?;
    if ctx.json {
        output::json(&json!(
            vols.iter()
                .map(|v| v.to_json(&pool.name))
                .collect::<Vec<_>>()
        ));
        return Ok(());
    }
    if names {
        for vol in &vols {
            println!("{}", vol.name);
        }
        return Ok(());
    }
    if vols.is_empty() {
        println!("No volumes in {}.", pool.name);
        return Ok(());
    }
    let mut t = output::table(&["NAME", "FORMAT", "CAPACITY", "ALLOCATION", "PATH"]);
    for vol in &vols {
        t.add_row(vec![
            Cell::new(&vol.name),
            Cell::new(&vol.format),
            Cell::new(bytes(vol.capacity)),
            Cell::new(bytes(vol.allocation)),
            Cell::new(&vol.file),
        ]);
    }
    output::align_right(&mut t, &[2, 3]);
    output::print_table(&mut t);
    println!();
    println!("{} listed.", output::count(vols.len(), "volume"));
    Ok(())
}

fn print_info(pool: &PoolInfo, vol: &VolumeInfo) {
    let mut rows = vec![
        ("Pool", pool.name.clone()),
        ("Path", vol.file.clone()),
        ("Format", vol.format.clone()),
        ("Capacity", bytes(vol.capacity)),
        ("Allocation", bytes(vol.allocation)),
    ];
    if !vol.job.is_empty() {
        rows.push(("Job", vol.job.clone()));
    }
    output::fields(&vol.name, &rows);
}

async fn info(ctx: &Ctx, a: &VolArgs) -> Result<()> {
    let (pool, vol) = objects::volume(ctx.bus(), &a.pool, &a.volume).await?;
    if ctx.json {
        output::json(&vol.to_json(&pool.name));
    } else {
        print_info(&pool, &vol);
    }
    Ok(())
}

/// A volume's XML as CreateVolume and CloneVolume take it.
fn volume_xml(
    name: &str,
    capacity: Option<u64>,
    format: Option<&str>,
    backing: Option<(&str, Option<&str>)>,
) -> String {
    let mut x = format!("<volume><name>{}</name>", escape(name));
    if let Some(c) = capacity {
        x.push_str(&format!("<capacity unit='bytes'>{c}</capacity>"));
    }
    if let Some(f) = format {
        x.push_str(&format!("<target><format type='{}'/></target>", escape(f)));
    }
    if let Some((path, fmt)) = backing {
        x.push_str(&format!("<backingStore><path>{}</path>", escape(path)));
        if let Some(f) = fmt {
            x.push_str(&format!("<format type='{}'/>", escape(f)));
        }
        x.push_str("</backingStore>");
    }
    x.push_str("</volume>");
    x
}

async fn create(
    ctx: &Ctx,
    pool: &str,
    name: &str,
    xml: String,
    source: Option<&str>,
    preallocation: Option<String>,
) -> Result<()> {
    let bus = ctx.bus();
    let pool = objects::active_pool(bus, pool).await?;
    let mut o: Opts = opts([]);
    if let Some(pa) = preallocation {
        o.insert("preallocation".into(), Variant::from(pa));
    }
    let path = match source {
        None => {
            let _agent = Agent::start(bus.interactive);
            bus.change(&p::CREATE_VOLUME, &pool.path, &(xml, o)).await?
        }
        Some(src) => {
            let (_, src) = objects::volume(bus, &pool.name, src).await?;
            let src_path = zbus::OwnedObjectPath::try_from(src.path.clone())
                .map_err(|e| Error::failed(e.to_string()))?;
            let label = format!("cloning {} to {name}", src.name);
            progress::run_plain(
                ctx,
                &label,
                bus.change(&p::CLONE_VOLUME, &pool.path, &(xml, src_path, o)),
            )
            .await?
        }
    };
    let vol = objects::volume_at(bus, path.as_str()).await?;
    println!(
        "volume {} created in {} ({}, {})",
        vol.name,
        pool.name,
        vol.format,
        bytes(vol.capacity)
    );
    Ok(())
}

async fn act(
    ctx: &Ctx,
    a: &VolArgs,
    method: &super::api::Method<(Opts,), ()>,
    doing: &str,
    done: &str,
) -> Result<()> {
    let bus = ctx.bus();
    let (_, vol) = objects::volume(bus, &a.pool, &a.volume).await?;
    let label = format!("{doing} {}", vol.name);
    progress::run_plain(ctx, &label, bus.change(method, &vol.path, &(opts([]),))).await?;
    println!("volume {} {done}", vol.name);
    Ok(())
}

/// The descriptor the daemon reads (upload) or writes (download): the file, or standard
/// input or output for "-". Returns it with its size when known.
fn open_end(file: &Path, upload: bool) -> Result<(OwnedFd, u64)> {
    let io = |e: std::io::Error| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            Kind::NotFound
        } else {
            Kind::Failed
        };
        Error::new(kind, format!("{}: {e}", file.display()))
    };
    if file.as_os_str() == "-" {
        let fd = if upload {
            std::io::stdin().as_fd().try_clone_to_owned()
        } else {
            std::io::stdout().as_fd().try_clone_to_owned()
        }
        .map_err(io)?;
        let f = File::from(fd);
        let size = f
            .metadata()
            .ok()
            .filter(|m| m.is_file())
            .map_or(0, |m| m.len());
        return Ok((f.into(), size));
    }
    let f = if upload {
        File::open(file)
    } else {
        File::create(file)
    }
    .map_err(io)?;
    let size = if upload {
        f.metadata().map_err(io)?.len()
    } else {
        0
    };
    Ok((f.into(), size))
}

async fn transfer(
    ctx: &Ctx,
    a: &VolArgs,
    file: &Path,
    offset: u64,
    length: u64,
    upload: bool,
) -> Result<()> {
    let bus = ctx.bus();
    let (_, vol) = objects::volume(bus, &a.pool, &a.volume).await?;
    let (fd, size) = open_end(file, upload)?;
    let total = if length > 0 {
        length
    } else if upload {
        size
    } else {
        vol.allocation.max(vol.capacity).saturating_sub(offset)
    };
    let o = opts([
        ("offset", Variant::from(offset)),
        ("length", Variant::from(length)),
    ]);
    let o: Opts = o
        .into_iter()
        .filter(|(_, v)| !matches!(v, Variant::U64(0)))
        .collect();
    let fd = zbus::OwnedFd::from(fd);
    let (method, label) = if upload {
        (&v::UPLOAD, format!("upload into {}", vol.name))
    } else {
        (&v::DOWNLOAD, format!("download of {}", vol.name))
    };
    let n = progress::transfer(
        ctx,
        &vol.path,
        &label,
        total,
        bus.change(method, &vol.path, &(fd, o)),
    )
    .await?;
    let what = if upload {
        format!("{} written into {}", bytes(n), vol.name)
    } else {
        format!("{} read from {}", bytes(n), vol.name)
    };
    // Downloading to standard output keeps it for the bytes.
    if !upload && file.as_os_str() == "-" {
        eprintln!("{what}");
    } else {
        println!("{what}");
    }
    Ok(())
}
