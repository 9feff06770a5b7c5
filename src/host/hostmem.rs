//! The host's memory by NUMA cell: free memory, free and pooled pages of each size, the huge
//! page pools' sizes (`nr_hugepages`) and the kernel's same-page merging (KSM) settings, read
//! and written where libvirt's `virhostmem.c`/`virnuma.c` read and write them, with the same
//! refusals. The sysfs root is an argument so that tests can hand in a tree of their own.

use std::{fs, path::Path};

/// Why a request was refused, by libvirt's error kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `VIR_ERR_INTERNAL_ERROR`.
    #[error("{0}")]
    Internal(String),
    /// `VIR_ERR_OPERATION_FAILED`.
    #[error("{0}")]
    Failed(String),
    /// `VIR_ERR_OPERATION_UNSUPPORTED`.
    #[error("{0}")]
    Unsupported(String),
    /// `VIR_ERR_OPERATION_INVALID`.
    #[error("{0}")]
    Invalid(String),
    /// `VIR_ERR_SYSTEM_ERROR`.
    #[error("{0}")]
    System(String),
}

/// The host's memory as sysfs shows it under `root` (normally `/sys`).
pub struct HostMem<'a> {
    pub root: &'a Path,
}

/// The page size of the system in KiB.
pub fn system_page_kib() -> u32 {
    // SAFETY: sysconf has no preconditions.
    let bytes = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(bytes / 1024).unwrap_or(4)
}

impl HostMem<'_> {
    pub fn system() -> HostMem<'static> {
        HostMem {
            root: Path::new("/sys"),
        }
    }

    fn node_dir(&self) -> std::path::PathBuf {
        self.root.join("devices/system/node")
    }

    /// The highest NUMA node number (libnuma's `numa_max_node`), 0 on a host without NUMA.
    pub fn max_node(&self) -> u32 {
        fs::read_dir(self.node_dir())
            .into_iter()
            .flatten()
            .filter_map(|e| {
                e.ok()?
                    .file_name()
                    .to_str()?
                    .strip_prefix("node")?
                    .parse()
                    .ok()
            })
            .max()
            .unwrap_or(0)
    }

    /// (total, free) bytes of NUMA node `n`, from its meminfo (what `numa_node_size64` reads).
    fn node_memory(&self, n: u32) -> (u64, u64) {
        let text = fs::read_to_string(self.node_dir().join(format!("node{n}/meminfo")))
            .unwrap_or_default();
        let get = |key: &str| {
            text.lines()
                .filter_map(|l| {
                    // "Node 0 MemFree:   123 kB"
                    let (k, v) = l.split_once(':')?;
                    (k.split_whitespace().last()? == key)
                        .then(|| v.split_whitespace().next()?.parse::<u64>().ok())?
                })
                .next()
                .unwrap_or(0)
                * 1024
        };
        (get("MemTotal"), get("MemFree"))
    }

    /// Free bytes of cells `start..start+max` (clipped to the host's cells), as
    /// `virHostMemGetCellsFree`.
    pub fn cells_free(&self, start: i32, max: i32) -> Result<Vec<u64>, Refusal> {
        let last_node = self.max_node() as i64;
        let start = i64::from(start);
        if start > last_node {
            return Err(Refusal::Internal(format!(
                "start cell {start} out of range (0-{last_node})"
            )));
        }
        let last = (start + i64::from(max) - 1).min(last_node);
        Ok((start..=last)
            .map(|n| self.node_memory(n as u32).1)
            .collect())
    }

    /// The directory of node `node`'s pool of `kib` pages (the host's pool for node -1), or
    /// libvirt's refusal.
    fn pool(&self, node: i64, kib: u32) -> Result<std::path::PathBuf, Refusal> {
        if node < 0 {
            let dir = self
                .root
                .join(format!("kernel/mm/hugepages/hugepages-{kib}kB"));
            return if dir.is_dir() {
                Ok(dir)
            } else {
                Err(Refusal::Failed(format!("page size {kib} is not available")))
            };
        }
        let nd = self.node_dir().join(format!("node{node}"));
        let dir = nd.join(format!("hugepages/hugepages-{kib}kB"));
        if dir.is_dir() {
            Ok(dir)
        } else if !nd.is_dir() {
            Err(Refusal::Failed(format!(
                "NUMA node {node} is not available"
            )))
        } else {
            Err(Refusal::Failed(format!(
                "page size {kib} is not available on node {node}"
            )))
        }
    }

    fn count(path: &Path, fail: fn(String) -> Refusal) -> Result<u64, Refusal> {
        let text = fs::read_to_string(path).map_err(|e| {
            Refusal::System(format!("Failed to open file '{}': {e}", path.display()))
        })?;
        text.trim_end()
            .parse()
            .ok()
            .ok_or_else(|| fail(format!("unable to parse: {text}")))
    }

    /// Free pages of each size in `sizes` (KiB) on cells `start..start+count`, cell by cell,
    /// as `virHostMemGetFreePages`.
    pub fn free_pages(&self, sizes: &[u32], start: i32, count: u32) -> Result<Vec<u64>, Refusal> {
        let last_node = self.max_node() as i64;
        let start = i64::from(start);
        if start > last_node {
            return Err(Refusal::Internal(format!(
                "start cell {start} out of range (0-{last_node})"
            )));
        }
        let last = last_node.min(start + i64::from(count) - 1);
        let system = system_page_kib();
        let mut out = Vec::new();
        for cell in start..=last {
            for &kib in sizes {
                if kib == system {
                    let free = if cell < 0 {
                        (0..=self.max_node()).map(|n| self.node_memory(n).1).sum()
                    } else {
                        self.node_memory(cell as u32).1
                    };
                    out.push(free / (u64::from(system) * 1024));
                } else {
                    let dir = self.pool(cell, kib)?;
                    out.push(Self::count(&dir.join("free_hugepages"), Refusal::Internal)?);
                }
            }
        }
        if out.is_empty() {
            return Err(Refusal::Internal("no suitable info found".into()));
        }
        Ok(out)
    }

    /// Grow (`add`) or set the huge page pools of each (size, count) on cells
    /// `start..start+cells`, as `virHostMemAllocPages`; how many pools were handled.
    pub fn alloc_pages(
        &self,
        pools: &[(u32, u64)],
        start: i32,
        cells: u32,
        add: bool,
    ) -> Result<usize, Refusal> {
        let last_node = self.max_node() as i64;
        let start = i64::from(start);
        if start > last_node {
            return Err(Refusal::Internal(format!(
                "start cell {start} out of range (0-{last_node})"
            )));
        }
        let last = last_node.min(start + i64::from(cells) - 1);
        let mut n = 0;
        for cell in start..=last {
            for &(kib, count) in pools {
                self.set_pool(cell, kib, count, add)?;
                n += 1;
            }
        }
        Ok(n)
    }

    fn set_pool(&self, node: i64, kib: u32, count: u64, add: bool) -> Result<(), Refusal> {
        if kib == system_page_kib() {
            return Err(Refusal::Unsupported(
                "system pages pool can't be modified".into(),
            ));
        }
        let path = self.pool(node, kib)?.join("nr_hugepages");
        let now = Self::count(&path, Refusal::Failed).map_err(|e| match e {
            Refusal::Failed(t) => Refusal::Failed(format!(
                "invalid number '{}' in '{}'",
                t.trim_start_matches("unable to parse: "),
                path.display()
            )),
            e => e,
        })?;
        let want = if add {
            if count == 0 {
                return Ok(());
            }
            now.saturating_add(count)
        } else {
            if now == count {
                return Ok(());
            }
            count
        };
        fs::write(&path, want.to_string())
            .map_err(|e| Refusal::System(format!("Unable to write to: {}: {e}", path.display())))?;
        let got = Self::count(&path, Refusal::Failed)?;
        if got != want {
            return Err(Refusal::Failed(format!(
                "Unable to allocate {want} pages. Allocated only {got}"
            )));
        }
        Ok(())
    }

    /// Write KSM setting `file` (under `kernel/mm/ksm`) for libvirt parameter `param`,
    /// refused when the kernel lacks it.
    pub fn ksm_set(&self, settings: &[(&str, u32)]) -> Result<(), Refusal> {
        let dir = self.root.join("kernel/mm/ksm");
        let file = |param: &str| dir.join(param.split_once('_').map_or(param, |(_, f)| f));
        for (param, _) in settings {
            if !file(param).exists() {
                return Err(Refusal::Invalid(format!(
                    "Parameter '{param}' is not supported by this kernel"
                )));
            }
        }
        for (param, v) in settings {
            fs::write(file(param), v.to_string())
                .map_err(|e| Refusal::System(format!("failed to set {param}: {e}")))?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree() -> tempfile::TempDir {
        let t = tempfile::tempdir().expect("tempdir");
        let n0 = t.path().join("devices/system/node/node0");
        fs::create_dir_all(n0.join("hugepages/hugepages-2048kB")).expect("mkdir");
        fs::create_dir_all(t.path().join("devices/system/node/node1")).expect("mkdir");
        fs::write(
            n0.join("meminfo"),
            "Node 0 MemTotal:  8192 kB\nNode 0 MemFree:   4096 kB\n",
        )
        .expect("meminfo");
        fs::write(n0.join("hugepages/hugepages-2048kB/free_hugepages"), "3\n").expect("free");
        fs::write(n0.join("hugepages/hugepages-2048kB/nr_hugepages"), "5\n").expect("nr");
        t
    }

    #[test]
    fn cells_and_pages_read_as_libvirt() {
        let t = tree();
        let h = HostMem { root: t.path() };
        assert_eq!(h.max_node(), 1);
        assert_eq!(h.cells_free(0, 5), Ok(vec![4096 * 1024, 0]));
        assert_eq!(
            h.cells_free(2, 1),
            Err(Refusal::Internal("start cell 2 out of range (0-1)".into()))
        );
        assert_eq!(h.free_pages(&[2048], 0, 1), Ok(vec![3]));
        assert_eq!(
            h.free_pages(&[1024], 0, 1),
            Err(Refusal::Failed(
                "page size 1024 is not available on node 0".into()
            ))
        );
    }

    #[test]
    fn pools_are_grown_or_set_and_system_pages_refused() {
        let t = tree();
        let h = HostMem { root: t.path() };
        let nr = t
            .path()
            .join("devices/system/node/node0/hugepages/hugepages-2048kB/nr_hugepages");
        assert_eq!(h.alloc_pages(&[(2048, 2)], 0, 1, true), Ok(1));
        assert_eq!(fs::read_to_string(&nr).expect("nr"), "7");
        assert_eq!(h.alloc_pages(&[(2048, 7)], 0, 1, false), Ok(1));
        assert!(matches!(
            h.alloc_pages(&[(system_page_kib(), 1)], 0, 1, true),
            Err(Refusal::Unsupported(_))
        ));
    }
}
