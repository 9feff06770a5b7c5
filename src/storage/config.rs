//! The `[storage]` table of `virtbusd.toml`.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::manager::Settings;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Directories pools may use besides the built-in ones (`<state dir>/images` and
    /// /var/lib/libvirt/images for the system instance; `<state dir>/images` and the user's
    /// home for a session instance), each with everything below it.
    pub pool_dirs: Vec<PathBuf>,
    /// Define, build, start and autostart a pool named `default` at `<state dir>/images`
    /// on the first start of the system instance.
    pub default_pool: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            pool_dirs: Vec::new(),
            default_pool: true,
        }
    }
}

impl StorageConfig {
    /// The storage settings of an instance keeping its state in `state_dir`.
    pub fn settings(&self, state_dir: &Path, system: bool) -> Settings {
        let images = state_dir.join("images");
        let mut pool_dirs = vec![images.clone()];
        if system {
            pool_dirs.push(PathBuf::from("/var/lib/libvirt/images"));
        } else if let Some(home) = std::env::var_os("HOME") {
            pool_dirs.push(PathBuf::from(home));
        }
        pool_dirs.extend(self.pool_dirs.iter().cloned());
        Settings {
            state_dir: Some(state_dir.join("storage")),
            pool_dirs,
            default_pool: (system && self.default_pool).then_some(images),
            run_dir: None,
        }
    }
}
