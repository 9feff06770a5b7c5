//! Running a call that changes something: with the polkit agent when one may prompt, and
//! with the domain's `Job`/`JobProgress` shown while it runs — a progress bar on a terminal,
//! plain lines otherwise. Ctrl-C stops waiting, not the operation, and says so.

use std::{future::Future, io::IsTerminal, pin::Pin, time::Duration};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use zbus::{MatchRule, Message, MessageStream, export::futures_core::Stream, message::Type};

use super::{
    Ctx,
    api::{DOMAIN, PropMap, SERVICE, domain as d},
    error::{Error, Kind, Result},
    polkit::Agent,
};

/// The next message of a stream.
pub async fn next(stream: &mut MessageStream) -> Option<zbus::Result<Message>> {
    std::future::poll_fn(|cx| Pin::new(&mut *stream).poll_next(cx)).await
}

/// A stream of `PropertiesChanged` of the object at `path`, or of every object of the
/// daemon when `path` is `None`.
pub async fn properties_changed(ctx: &Ctx, path: Option<&str>) -> Result<MessageStream> {
    let mut rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(SERVICE)
        .interface("org.freedesktop.DBus.Properties")
        .member("PropertiesChanged");
    if let Some(p) = path {
        rule = rule.path(p.to_owned());
    }
    Ok(MessageStream::for_match_rule(
        rule.build()?,
        &ctx.bus().conn,
        std::num::NonZeroUsize::new(64),
    )
    .await?)
}

/// The interface and the changed properties of a `PropertiesChanged` signal.
pub fn decode_changed(msg: &Message) -> Option<(String, PropMap)> {
    let (iface, changed, _invalidated): (String, PropMap, Vec<String>) =
        msg.body().deserialize().ok()?;
    Some((iface, changed))
}

/// How long a call runs before its progress is shown.
const SHOW_AFTER: Duration = Duration::from_millis(300);

/// What the user sees of a job.
enum View {
    Bar(ProgressBar),
    Lines { last: Option<(String, u32)> },
}

impl View {
    fn new(label: &str) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(1000), ProgressDrawTarget::stderr());
            bar.set_style(spinner_style());
            bar.set_message(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            View::Bar(bar)
        } else {
            View::Lines { last: None }
        }
    }

    fn update(&mut self, name: &str, job: &str, progress: f64) {
        match self {
            View::Bar(bar) => {
                if progress > 0.0 {
                    bar.set_style(bar_style());
                    bar.set_position((progress.clamp(0.0, 1.0) * 1000.0) as u64);
                }
                if !job.is_empty() {
                    bar.set_message(format!("{name}: {job}"));
                }
            }
            View::Lines { last } => {
                if job.is_empty() {
                    return;
                }
                let pct = (progress.clamp(0.0, 1.0) * 100.0).round() as u32;
                let show = match last {
                    Some((j, p)) => j != job || pct >= *p + 10 || (pct == 100 && *p != 100),
                    None => true,
                };
                if show {
                    if pct == 0 {
                        eprintln!("{name}: {job}");
                    } else {
                        eprintln!("{name}: {job} {pct}%");
                    }
                    *last = Some((job.to_owned(), pct));
                }
            }
        }
    }

    fn finish(self) {
        if let View::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

fn spinner_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_spinner())
}

fn bar_style() -> ProgressStyle {
    ProgressStyle::with_template("{spinner} {msg} [{bar:30}] {percent}% ({elapsed})")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// Run `call`, a change to the domain `name` at `dom_path`, showing its job as it goes.
/// `label` says what is being done, for the spinner and for an interruption.
pub async fn run<T>(
    ctx: &Ctx,
    dom_path: &str,
    name: &str,
    label: &str,
    call: impl Future<Output = zbus::Result<T>>,
) -> Result<T> {
    let mut stream = properties_changed(ctx, Some(dom_path)).await?;
    let _agent = Agent::start(ctx.bus().interactive);
    // Quick calls show nothing: the view appears once the call has taken a moment.
    let mut view: Option<View> = None;
    let show = tokio::time::sleep(SHOW_AFTER);
    let mut show = std::pin::pin!(show);
    let (mut job, mut progress) = (String::new(), 0.0);
    let mut call = std::pin::pin!(call);
    let result = loop {
        tokio::select! {
            r = &mut call => break r.map_err(Error::from),
            () = &mut show, if view.is_none() => {
                let mut v = View::new(&format!("{name}: {label}"));
                v.update(name, &job, progress);
                view = Some(v);
            }
            Some(Ok(msg)) = next(&mut stream) => {
                if let Some((iface, changed)) = decode_changed(&msg)
                    && iface == DOMAIN
                {
                    if let Some(j) = d::JOB.in_map(&changed) {
                        job = j;
                    }
                    if let Some(p) = d::JOB_PROGRESS.in_map(&changed) {
                        progress = p;
                    }
                    if let Some(v) = view.as_mut() {
                        v.update(name, &job, progress);
                    }
                }
            }
            _ = tokio::signal::ctrl_c() => {
                if let Some(v) = view {
                    v.finish();
                }
                return Err(interrupted(name, label));
            }
        }
    };
    if let Some(v) = view {
        v.finish();
    }
    result
}

/// Ctrl-C while the daemon works: the request was sent and goes on; say so.
pub fn interrupted(name: &str, label: &str) -> Error {
    Error::new(
        Kind::Interrupted,
        format!(
            "interrupted: {label} of {name} goes on in the daemon \
             (`virtbusctl status {name}` shows its state)"
        ),
    )
}

/// Wait until the domain at `dom_path` is in `state`, with a spinner, until Ctrl-C.
pub async fn wait_state(ctx: &Ctx, dom_path: &str, name: &str, state: &str) -> Result<()> {
    let mut stream = properties_changed(ctx, Some(dom_path)).await?;
    // Subscribed first, then read: no change can slip between the two.
    if ctx.bus().get(&d::STATE, dom_path).await? == state {
        return Ok(());
    }
    let view = View::new(&format!("{name}: waiting to be {state}"));
    if matches!(view, View::Lines { .. }) {
        eprintln!("{name}: waiting to be {state}");
    }
    loop {
        tokio::select! {
            m = next(&mut stream) => match m {
                Some(Ok(msg)) => {
                    if let Some((iface, changed)) = decode_changed(&msg)
                        && iface == DOMAIN
                        && d::STATE.in_map(&changed).as_deref() == Some(state)
                    {
                        view.finish();
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(e.into()),
                None => return Err(Error::failed("the daemon left the bus")),
            },
            _ = tokio::signal::ctrl_c() => {
                view.finish();
                return Err(Error::new(
                    Kind::Interrupted,
                    format!("interrupted: stopped waiting; {name} goes on towards {state}"),
                ));
            }
        }
    }
}

/// What the user sees of a volume transfer: a byte-counting bar on a terminal, a line at
/// every tenth otherwise.
enum TransferView {
    Bar(ProgressBar),
    Lines { last_tenth: Option<u64> },
}

impl TransferView {
    fn new(label: &str, total: u64) -> Self {
        if std::io::stderr().is_terminal() {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            let template = if total > 0 {
                "{spinner} {msg} [{bar:30}] {bytes}/{total_bytes} {binary_bytes_per_sec} ({elapsed})"
            } else {
                "{spinner} {msg} {bytes} {binary_bytes_per_sec} ({elapsed})"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .unwrap_or_else(|_| ProgressStyle::default_bar())
                    .progress_chars("=> "),
            );
            bar.set_message(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(120));
            TransferView::Bar(bar)
        } else {
            TransferView::Lines { last_tenth: None }
        }
    }

    fn update(&mut self, label: &str, done: u64, total: u64) {
        match self {
            TransferView::Bar(bar) => {
                if total > 0 && bar.length() != Some(total) {
                    bar.set_length(total);
                }
                bar.set_position(done);
            }
            TransferView::Lines { last_tenth } => {
                if total == 0 {
                    eprintln!("{label}: {}", super::output::bytes(done));
                    return;
                }
                let tenth = done.saturating_mul(10) / total;
                if last_tenth.is_none_or(|t| tenth > t) {
                    eprintln!(
                        "{label}: {}% ({} of {})",
                        tenth * 10,
                        super::output::bytes(done),
                        super::output::bytes(total)
                    );
                    *last_tenth = Some(tenth);
                }
            }
        }
    }

    fn finish(self) {
        if let TransferView::Bar(bar) = self {
            bar.finish_and_clear();
        }
    }
}

/// Run `call`, an upload or download of the volume at `vol_path`, showing the volume's
/// `Progress` signals as they come. `total` is the client's guess of the bytes (0: unknown)
/// until the daemon says.
pub async fn transfer<T>(
    ctx: &Ctx,
    vol_path: &str,
    label: &str,
    total: u64,
    call: impl Future<Output = zbus::Result<T>>,
) -> Result<T> {
    use super::api::{VOLUME, volume as v};
    let rule = MatchRule::builder()
        .msg_type(Type::Signal)
        .sender(SERVICE)
        .interface(VOLUME)
        .member(v::PROGRESS.name())
        .path(vol_path.to_owned())
        .build()?;
    let mut stream =
        MessageStream::for_match_rule(rule, &ctx.bus().conn, std::num::NonZeroUsize::new(64))
            .await?;
    let _agent = Agent::start(ctx.bus().interactive);
    let mut view = TransferView::new(label, total);
    let mut call = std::pin::pin!(call);
    let result = loop {
        tokio::select! {
            r = &mut call => break r.map_err(Error::from),
            Some(Ok(msg)) = next(&mut stream) => {
                if let Ok((_op, done, t)) = msg.body().deserialize::<(String, u64, u64)>() {
                    view.update(label, done, if t > 0 { t } else { total });
                }
            }
            _ = tokio::signal::ctrl_c() => {
                view.finish();
                return Err(Error::new(
                    Kind::Interrupted,
                    format!("interrupted: the {label} goes on in the daemon"),
                ));
            }
        }
    };
    // Signals sent before the reply may still be queued: show the last of them.
    while let Ok(Some(Ok(msg))) =
        tokio::time::timeout(Duration::from_millis(20), next(&mut stream)).await
    {
        if let Ok((_op, done, t)) = msg.body().deserialize::<(String, u64, u64)>() {
            view.update(label, done, if t > 0 { t } else { total });
        }
    }
    view.finish();
    result
}

/// Run `call`, a change with no job of its own to follow (a volume wipe or clone), with the
/// polkit agent and, once it takes a moment on a terminal, a spinner saying `label`.
pub async fn run_plain<T>(
    ctx: &Ctx,
    label: &str,
    call: impl Future<Output = zbus::Result<T>>,
) -> Result<T> {
    let _agent = Agent::start(ctx.bus().interactive);
    let mut spinner: Option<ProgressBar> = None;
    let show = tokio::time::sleep(SHOW_AFTER);
    let mut show = std::pin::pin!(show);
    let mut call = std::pin::pin!(call);
    let result = loop {
        tokio::select! {
            r = &mut call => break r.map_err(Error::from),
            () = &mut show, if spinner.is_none() => {
                let bar = if std::io::stderr().is_terminal() {
                    ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
                } else {
                    ProgressBar::hidden()
                };
                bar.set_style(spinner_style());
                bar.set_message(label.to_owned());
                bar.enable_steady_tick(Duration::from_millis(120));
                spinner = Some(bar);
            }
            _ = tokio::signal::ctrl_c() => {
                if let Some(s) = spinner {
                    s.finish_and_clear();
                }
                return Err(Error::new(
                    Kind::Interrupted,
                    format!("interrupted: {label} goes on in the daemon"),
                ));
            }
        }
    };
    if let Some(s) = spinner {
        s.finish_and_clear();
    }
    result
}
