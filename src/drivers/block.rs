//! Requests about a running guest's disks that a driver carries out in its hypervisor:
//! resizing, throttling, write thresholds, error states and block jobs (pull, commit, copy),
//! with the events those raise. The core resolves which disk is meant and checks the state
//! first; a driver gets the disk's target name and the live definition.

use crate::model::devices::{DiskFormat, Iotune};

/// libvirt's `virDomainBlockJobType`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockJobKind {
    Pull,
    Copy,
    Commit,
    ActiveCommit,
}

impl BlockJobKind {
    pub fn code(self) -> i32 {
        match self {
            Self::Pull => 1,
            Self::Copy => 2,
            Self::Commit => 3,
            Self::ActiveCommit => 4,
        }
    }

    /// The word libvirt's job names and messages use.
    pub fn name(self) -> &'static str {
        match self {
            Self::Pull => "pull",
            Self::Copy => "copy",
            Self::Commit => "commit",
            Self::ActiveCommit => "active-commit",
        }
    }
}

/// libvirt's `virConnectDomainEventBlockJobStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlockJobStatus {
    Completed,
    Failed,
    Canceled,
    /// A copy or active commit mirrors its disk: it may now be pivoted.
    Ready,
}

impl BlockJobStatus {
    pub fn code(self) -> i32 {
        match self {
            Self::Completed => 0,
            Self::Failed => 1,
            Self::Canceled => 2,
            Self::Ready => 3,
        }
    }
}

/// What a new block job does to disk `target`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobStart {
    /// Copy the data of the images below the top into the top, down to `base` (an image
    /// path of the chain; `None`: the whole chain), which then backs the top.
    Pull { base: Option<String> },
    /// Merge image `top` (`None`: the active layer) down into `base`; an active commit
    /// mirrors until pivoted.
    Commit {
        top: Option<String>,
        base: String,
        active: bool,
    },
    /// Mirror the disk into a new image at `dest`; `shallow` copies the top only, over the
    /// same backing; `reuse` writes into an image that exists already.
    Copy {
        dest: String,
        format: DiskFormat,
        shallow: bool,
        reuse: bool,
    },
}

/// A block job's progress, as `virDomainGetBlockJobInfo` reports it (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlockJobInfo {
    pub kind: BlockJobKind,
    pub bandwidth: u64,
    pub cur: u64,
    pub end: u64,
}

/// libvirt's `virDomainDiskErrorCode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskError {
    Unspec,
    NoSpace,
}

impl DiskError {
    pub fn code(self) -> i32 {
        match self {
            Self::Unspec => 1,
            Self::NoSpace => 2,
        }
    }
}

/// One request about disk `target` (or all disks).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockRequest {
    /// Grow (or shrink) the disk's image to `bytes`.
    Resize { target: String, bytes: u64 },
    /// Apply new throttling to the disk.
    SetIoTune { target: String, tune: Iotune },
    /// The disks in an error state, by target.
    Errors,
    /// Arm a write threshold on image `index` of the disk's chain (`None`: its top).
    SetThreshold {
        target: String,
        index: Option<u32>,
        bytes: u64,
    },
    /// Start a block job at `bandwidth` bytes/s (0: unlimited).
    Start {
        target: String,
        job: JobStart,
        bandwidth: u64,
    },
    /// The disk's job, if any.
    Info { target: String },
    /// End the disk's job: cancel it, or (`pivot`) switch the disk onto its copy; with
    /// `wait`, return once it has ended.
    Abort {
        target: String,
        pivot: bool,
        wait: bool,
    },
    /// Change the job's bandwidth (bytes/s).
    SetSpeed { target: String, bandwidth: u64 },
}

/// The answer to a [`BlockRequest`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlockReply {
    Done,
    Errors(Vec<(String, DiskError)>),
    Info(Option<BlockJobInfo>),
}
