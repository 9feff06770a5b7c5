//! The snapshot tree of one domain: parent links, the current snapshot, and libvirt's rules for
//! deleting with or without children.

use std::sync::Arc;

use super::info::{SnapshotInfo, SnapshotKind};
use crate::model::SnapshotDef;

/// One snapshot's metadata. `def.name` is always set.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub def: Arc<SnapshotDef>,
    pub kind: SnapshotKind,
}

impl Snapshot {
    pub fn name(&self) -> &str {
        self.def.name.as_deref().unwrap_or_default()
    }

    pub fn parent(&self) -> Option<&str> {
        self.def.parent.as_deref()
    }
}

/// Which part of a subtree a delete removes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeleteScope {
    /// The snapshot alone; its children move up to its parent.
    Alone,
    /// The snapshot and all its descendants.
    WithChildren,
    /// Only the descendants.
    ChildrenOnly,
}

/// Snapshots in creation order, so listings are stable.
#[derive(Debug, Clone, Default)]
pub struct SnapshotTree {
    entries: Vec<Snapshot>,
    current: Option<String>,
}

impl SnapshotTree {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn get(&self, name: &str) -> Option<&Snapshot> {
        self.entries.iter().find(|s| s.name() == name)
    }

    pub fn current(&self) -> Option<&str> {
        self.current.as_deref()
    }

    pub fn set_current(&mut self, name: Option<&str>) {
        self.current = name.filter(|n| self.get(n).is_some()).map(str::to_owned);
    }

    pub fn iter(&self) -> impl Iterator<Item = &Snapshot> {
        self.entries.iter()
    }

    /// Add a snapshot; a parent that does not exist is dropped (the snapshot becomes a root),
    /// and a snapshot of the same name is replaced in place (redefinition).
    pub fn insert(&mut self, mut snap: Snapshot) {
        if let Some(p) = snap.parent()
            && (self.get(p).is_none() || p == snap.name())
        {
            Arc::make_mut(&mut snap.def).parent = None;
        }
        match self.entries.iter_mut().find(|s| s.name() == snap.name()) {
            Some(slot) => *slot = snap,
            None => self.entries.push(snap),
        }
    }

    pub fn children(&self, name: &str) -> Vec<&Snapshot> {
        self.entries
            .iter()
            .filter(|s| s.parent() == Some(name))
            .collect()
    }

    /// All descendants, depth first, each after its parent. Each is visited once, so parent
    /// links that loop (only possible in hand-edited files) cannot make this run forever.
    pub fn descendants(&self, name: &str) -> Vec<&Snapshot> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::from([name]);
        let mut stack: Vec<&Snapshot> = self.children(name).into_iter().rev().collect();
        while let Some(s) = stack.pop() {
            if !seen.insert(s.name()) {
                continue;
            }
            out.push(s);
            stack.extend(self.children(s.name()).into_iter().rev());
        }
        out
    }

    /// The names of `name`'s ancestors, nearest first; stops where parent links loop.
    pub fn ancestors<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        let mut out = Vec::new();
        let mut seen = std::collections::HashSet::from([name]);
        let mut cursor = self.get(name).and_then(Snapshot::parent);
        while let Some(c) = cursor {
            if !seen.insert(c) {
                break;
            }
            out.push(c);
            cursor = self.get(c).and_then(Snapshot::parent);
        }
        out
    }

    pub fn roots(&self) -> Vec<&Snapshot> {
        self.entries
            .iter()
            .filter(|s| s.parent().is_none())
            .collect()
    }

    pub fn is_leaf(&self, name: &str) -> bool {
        !self.entries.iter().any(|s| s.parent() == Some(name))
    }

    /// Every snapshot, each after its parent.
    pub fn topological(&self) -> Vec<&Snapshot> {
        let mut out = Vec::new();
        for root in self.roots() {
            out.push(root);
            out.extend(self.descendants(root.name()));
        }
        out
    }

    /// Remove by libvirt's rules; returns the names removed. If the current snapshot is
    /// removed, the deleted snapshot's parent becomes current (or the snapshot itself when only
    /// its children go).
    pub fn remove(&mut self, name: &str, scope: DeleteScope) -> Vec<String> {
        let Some(target) = self.get(name) else {
            return Vec::new();
        };
        let parent = target.parent().map(str::to_owned);
        let mut doomed: Vec<String> = match scope {
            DeleteScope::Alone => vec![name.to_owned()],
            DeleteScope::WithChildren | DeleteScope::ChildrenOnly => self
                .descendants(name)
                .iter()
                .map(|s| s.name().to_owned())
                .collect(),
        };
        if scope == DeleteScope::WithChildren {
            doomed.insert(0, name.to_owned());
        }
        if scope == DeleteScope::Alone {
            for s in &mut self.entries {
                if s.parent() == Some(name) {
                    Arc::make_mut(&mut s.def).parent = parent.clone();
                }
            }
        }
        if let Some(cur) = &self.current
            && doomed.contains(cur)
        {
            self.current = match scope {
                DeleteScope::ChildrenOnly => Some(name.to_owned()),
                _ => parent,
            };
        }
        self.entries
            .retain(|s| !doomed.iter().any(|d| d == s.name()));
        doomed
    }

    /// The property values of one snapshot.
    pub fn info(&self, domain: uuid::Uuid, snap: &Snapshot) -> SnapshotInfo {
        SnapshotInfo {
            domain,
            name: snap.name().to_owned(),
            description: snap.def.description.clone().unwrap_or_default(),
            parent: snap.def.parent.clone(),
            creation_time: snap.def.creation_time.unwrap_or(0).max(0) as u64,
            state: snap.def.state.clone().unwrap_or_default(),
            is_current: self.current.as_deref() == Some(snap.name()),
            kind: snap.kind,
        }
    }

    pub fn infos(&self, domain: uuid::Uuid) -> Vec<SnapshotInfo> {
        self.entries.iter().map(|s| self.info(domain, s)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(name: &str, parent: Option<&str>) -> Snapshot {
        Snapshot {
            def: Arc::new(SnapshotDef {
                name: Some(name.into()),
                parent: parent.map(Into::into),
                ..Default::default()
            }),
            kind: SnapshotKind::Internal,
        }
    }

    /// a ─ b ─ c
    ///   └ d
    fn tree() -> SnapshotTree {
        let mut t = SnapshotTree::default();
        t.insert(snap("a", None));
        t.insert(snap("b", Some("a")));
        t.insert(snap("c", Some("b")));
        t.insert(snap("d", Some("a")));
        t.set_current(Some("c"));
        t
    }

    fn names(v: Vec<&Snapshot>) -> Vec<&str> {
        v.into_iter().map(Snapshot::name).collect()
    }

    #[test]
    fn looping_parent_links_end() {
        // Only a redefinition over an existing snapshot (or a hand-edited file) makes a loop.
        let mut t = SnapshotTree::default();
        t.insert(snap("x", None));
        t.insert(snap("y", Some("x")));
        t.insert(snap("x", Some("y")));
        t.insert(snap("z", Some("x")));
        assert_eq!(names(t.descendants("x")), ["y", "z"]);
        assert_eq!(t.ancestors("z"), ["x", "y"]);
        assert!(t.topological().is_empty());
    }

    #[test]
    fn structure() {
        let t = tree();
        assert_eq!(names(t.children("a")), ["b", "d"]);
        assert_eq!(names(t.descendants("a")), ["b", "c", "d"]);
        assert_eq!(names(t.roots()), ["a"]);
        assert_eq!(names(t.topological()), ["a", "b", "c", "d"]);
        assert!(t.is_leaf("c") && t.is_leaf("d") && !t.is_leaf("b"));
    }

    #[test]
    fn delete_alone_reparents_and_moves_current_up() {
        let mut t = tree();
        t.set_current(Some("b"));
        assert_eq!(t.remove("b", DeleteScope::Alone), ["b"]);
        assert_eq!(t.get("c").and_then(Snapshot::parent), Some("a"));
        assert_eq!(t.current(), Some("a"));
    }

    #[test]
    fn delete_with_children_moves_current_to_parent() {
        let mut t = tree();
        assert_eq!(t.remove("b", DeleteScope::WithChildren), ["b", "c"]);
        assert_eq!(t.current(), Some("a"));
        assert_eq!(names(t.topological()), ["a", "d"]);
    }

    #[test]
    fn delete_children_only_makes_the_snapshot_current() {
        let mut t = tree();
        assert_eq!(t.remove("b", DeleteScope::ChildrenOnly), ["c"]);
        assert_eq!(t.current(), Some("b"));
        assert!(t.get("b").is_some());
    }

    #[test]
    fn deleting_a_root_alone_makes_children_roots() {
        let mut t = tree();
        t.remove("a", DeleteScope::Alone);
        assert_eq!(names(t.roots()), ["b", "d"]);
        assert_eq!(t.current(), Some("c"));
    }

    #[test]
    fn unknown_parent_becomes_root_and_redefine_replaces() {
        let mut t = SnapshotTree::default();
        t.insert(snap("x", Some("missing")));
        assert_eq!(t.get("x").and_then(Snapshot::parent), None);
        t.insert(snap("y", None));
        t.insert(snap("x", Some("y")));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("x").and_then(Snapshot::parent), Some("y"));
    }
}
