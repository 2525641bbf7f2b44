//! The XDP director as the control plane sees it
//! (`glb_director::control::Engine`): reloading builds the new table into
//! the generation not in use and flips to it; metrics read the program's
//! counters.

use std::path::Path;

use anyhow::Context;
use glb_core::encap::EncapParams;
use glb_core::route::RouteOptions;

use crate::image::Image;
use crate::metrics::Reporter;
use crate::program::Director;

/// The loaded program and what it was configured with.
#[derive(Debug)]
pub struct XdpEngine {
    director: Director,
    options: RouteOptions,
    encap: EncapParams,
    reporter: Reporter,
    reloads: u64,
}

impl XdpEngine {
    /// An engine over `director` (loaded, not necessarily holding a table).
    pub fn new(director: Director, options: RouteOptions, encap: EncapParams) -> XdpEngine {
        XdpEngine {
            director,
            options,
            encap,
            reporter: Reporter::default(),
            reloads: 0,
        }
    }

    /// The program.
    pub fn director(&mut self) -> &mut Director {
        &mut self.director
    }

    /// Loads the table at `path` into the program (see
    /// [`Director::install`]); returns how many tables it holds. On error
    /// the program keeps routing with the table it has.
    pub fn load_table(&mut self, path: &Path) -> anyhow::Result<usize> {
        let cap = self.director.tables_cap();
        let image = glb_director::table::load(path, |file| {
            Image::build(file, &self.options, &self.encap, cap)
        })?;
        self.director
            .install(&image)
            .map_err(|e| anyhow::anyhow!(crate::error_chain(&e)))
            .with_context(|| format!("{}: writing the program's maps", path.display()))?;
        Ok(image.tables.len())
    }
}

impl glb_director::control::Engine for XdpEngine {
    type Error = anyhow::Error;

    fn reload(&mut self, path: &Path) -> anyhow::Result<usize> {
        let n = self.load_table(path)?;
        self.reloads += 1;
        Ok(n)
    }

    fn metrics(&mut self) -> Vec<String> {
        let counters = self.director.counters();
        let traffic = self.director.traffic();
        match (counters, traffic) {
            (Ok(c), Ok(t)) => self.reporter.lines(&c, &t, self.reloads),
            (Err(e), _) | (_, Err(e)) => {
                tracing::warn!(
                    "cannot read the program's counters: {}",
                    crate::error_chain(&e)
                );
                Vec::new()
            }
        }
    }

    fn tick(&mut self) -> anyhow::Result<()> {
        Ok(())
    }
}
