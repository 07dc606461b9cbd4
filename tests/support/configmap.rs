//! A directory laid out the way the kubelet lays out a ConfigMap volume, updated the way
//! the kubelet updates it: a new timestamped data directory, a `..data_tmp` symlink
//! renamed over `..data`, per-key symlinks pointing through `..data`.

use std::path::{Path, PathBuf};

/// A kubelet-style ConfigMap volume directory.
pub struct ConfigMapDir {
    root: PathBuf,
    generation: u32,
}

impl ConfigMapDir {
    /// Creates `root` with one key per file.
    pub fn new(root: &Path, files: &[(&str, &str)]) -> ConfigMapDir {
        std::fs::create_dir_all(root).unwrap();
        let mut d = ConfigMapDir {
            root: root.to_path_buf(),
            generation: 0,
        };
        d.update(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), root.join(name)).unwrap();
        }
        d
    }

    /// The path of a key (the per-key symlink).
    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// Replaces the data with `files` in one atomic `..data` swap.
    pub fn update(&mut self, files: &[(&str, &str)]) {
        self.generation += 1;
        let data = format!("..2026_11_23_10_00_00.{:09}", self.generation);
        let dir = self.root.join(&data);
        std::fs::create_dir(&dir).unwrap();
        for (name, text) in files {
            std::fs::write(dir.join(name), text).unwrap();
        }
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(&data, &tmp).unwrap();
        let old = std::fs::read_link(self.root.join("..data")).ok();
        std::fs::rename(&tmp, self.root.join("..data")).unwrap();
        if let Some(old) = old {
            std::fs::remove_dir_all(self.root.join(old)).unwrap();
        }
    }
}
