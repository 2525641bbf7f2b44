//! Putting programs in service: attached to an interface (native XDP,
//! else generic), or into a slot of a root shim's pinned program array;
//! and what the director needs to know about an interface.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData, ProgramArray};
use aya::programs::{ProgramFd, Xdp, XdpFlags, xdp::XdpLinkId};
use tracing::warn;

/// How a program is attached to an interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// In the driver, before the kernel allocates anything.
    Native,
    /// After the kernel built a socket buffer: works on any interface,
    /// costs what the kernel's own receive path costs.
    Generic,
}

/// Why a program could not be put in service.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    /// Attaching to an interface failed in both modes.
    #[error("attaching to {iface}")]
    Attach {
        /// The interface.
        iface: String,
        /// aya's error.
        #[source]
        source: aya::programs::ProgramError,
    },
    /// The root array pin could not be opened.
    #[error("opening the root array {}", path.display())]
    OpenRoot {
        /// The pin.
        path: PathBuf,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// Writing the root array slot failed.
    #[error("setting slot {slot} of {}", path.display())]
    SetSlot {
        /// The pin.
        path: PathBuf,
        /// The slot.
        slot: u32,
        /// aya's error.
        #[source]
        source: aya::maps::MapError,
    },
    /// A previous pin could not be removed.
    #[error("removing the old pin {}", path.display())]
    Unpin {
        /// The pin.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Pinning failed.
    #[error("pinning at {}", path.display())]
    Pin {
        /// The pin.
        path: PathBuf,
        /// aya's error.
        #[source]
        source: aya::pin::PinError,
    },
}

/// Attaches `prog` to `iface` in the driver's native mode or, when the
/// driver has none, in generic mode with a warning (`generic_only` skips
/// the native attempt).
pub fn attach(
    prog: &mut Xdp,
    iface: &str,
    generic_only: bool,
) -> Result<(XdpLinkId, Mode), AttachError> {
    if !generic_only {
        match prog.attach(iface, XdpFlags::DRV_MODE) {
            Ok(id) => return Ok((id, Mode::Native)),
            Err(e) => warn!(
                iface,
                "native XDP is not available ({}); attaching in generic mode, which is much slower",
                crate::error_chain(&e)
            ),
        }
    }
    prog.attach(iface, XdpFlags::SKB_MODE)
        .map(|id| (id, Mode::Generic))
        .map_err(|source| AttachError::Attach {
            iface: iface.to_owned(),
            source,
        })
}

/// A slot of a pinned root array that holds a program of ours.
pub struct RootSlot {
    array: ProgramArray<MapData>,
    path: PathBuf,
    slot: u32,
}

impl std::fmt::Debug for RootSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RootSlot")
            .field("path", &self.path)
            .field("slot", &self.slot)
            .finish_non_exhaustive()
    }
}

impl RootSlot {
    /// Opens the root array pinned at `path`.
    pub fn open(path: &Path, slot: u32) -> Result<RootSlot, AttachError> {
        let err = |source| AttachError::OpenRoot {
            path: path.to_owned(),
            source,
        };
        let data = MapData::from_pin(path).map_err(err)?;
        let array = ProgramArray::try_from(Map::ProgramArray(data)).map_err(err)?;
        Ok(RootSlot {
            array,
            path: path.to_owned(),
            slot,
        })
    }

    /// Puts `prog` in the slot: from the next frame on, the root program
    /// tail-calls it (replacing whatever the slot held).
    pub fn set(&mut self, prog: &ProgramFd) -> Result<(), AttachError> {
        self.array
            .set(self.slot, prog, 0)
            .map_err(|source| AttachError::SetSlot {
                path: self.path.clone(),
                slot: self.slot,
                source,
            })
    }

    /// Empties the slot: frames fall through to the next slot or the
    /// kernel.
    pub fn clear(&mut self) -> Result<(), AttachError> {
        match self.array.clear_index(&self.slot) {
            Ok(()) | Err(aya::maps::MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(AttachError::SetSlot {
                path: self.path.clone(),
                slot: self.slot,
                source,
            }),
        }
    }

    /// The pin.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// Pins `map` at `path`, replacing a pin a previous run left there.
pub fn pin_replacing(map: &Map, path: &Path) -> Result<(), AttachError> {
    match fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(source) => {
            return Err(AttachError::Unpin {
                path: path.to_owned(),
                source,
            });
        }
    }
    map.pin(path).map_err(|source| AttachError::Pin {
        path: path.to_owned(),
        source,
    })
}

/// An interface's index and MAC address, from sysfs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Interface {
    /// Its index.
    pub ifindex: u32,
    /// Its MAC address.
    pub mac: [u8; 6],
}

impl Interface {
    /// Looks `name` up.
    pub fn lookup(name: &str) -> io::Result<Interface> {
        let bad =
            |what: &str| io::Error::new(io::ErrorKind::InvalidData, format!("{name}: bad {what}"));
        if name.is_empty() || name.contains('/') || name == "." || name == ".." {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{name:?} is not an interface name"),
            ));
        }
        let dir = Path::new("/sys/class/net").join(name);
        let ifindex = fs::read_to_string(dir.join("ifindex"))?
            .trim()
            .parse()
            .map_err(|_| bad("ifindex"))?;
        let text = fs::read_to_string(dir.join("address"))?;
        let mac: glb_core::wire::ethernet::Address =
            text.trim().parse().map_err(|_| bad("address"))?;
        Ok(Interface {
            ifindex,
            mac: mac.0,
        })
    }

    /// The interface a root array pin names by convention
    /// (`.../xdp_root_array@IFACE`), if it exists.
    pub fn of_root_pin(path: &Path) -> Option<(String, Interface)> {
        let name = path.file_name()?.to_str()?;
        let (_, iface) = name.rsplit_once('@')?;
        Interface::lookup(iface).ok().map(|i| (iface.to_owned(), i))
    }
}
