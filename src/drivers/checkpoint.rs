//! What a driver does for a checkpoint: persistent dirty bitmaps on the domain's disks. The
//! core keeps the metadata ([`crate::core::checkpoints`]); a driver only adds, removes and
//! measures bitmaps.

/// One disk's bitmap of a checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiskBitmap {
    /// The disk's target (`vda`).
    pub target: String,
    /// The persistent bitmap's name in the disk's image.
    pub bitmap: String,
}

/// What a driver is asked to do with a checkpoint's bitmaps on a running guest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BitmapRequest {
    /// Add these persistent bitmaps, all or none (one QMP transaction).
    Add(Vec<DiskBitmap>),
    /// Remove these bitmaps (from whichever image of each disk's chain holds them), all or
    /// none.
    Remove(Vec<DiskBitmap>),
    /// For each bitmap: its dirty bytes, or `None` when it is missing or unusable
    /// (inconsistent, not persistent).
    Measure(Vec<DiskBitmap>),
}
