//! The server binary an image is built around: where it is found, whether
//! it is statically linked, and what else a `FROM scratch` image then needs.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use crate::Error;

/// The environment variable that names the binary to build the image from.
pub const BINARY_ENV: &str = "TELEPRESENCE_MOCK_SERVER_BIN";
/// The binary's name, looked for on `PATH`.
const BINARY_NAME: &str = "telepresence-mock-server";
/// Where the shared libraries of a dynamically linked binary go in the build
/// context; the Dockerfile copies this tree to `/`.
const LIBRARIES_DIR: &str = "shared-libraries";

/// The image's Dockerfile: the one `scripts/build-images.sh` builds with, so
/// that both ways give the same image.
pub(super) const DOCKERFILE: &str = include_str!("../../Dockerfile");

/// What to tell a user whose binary cannot go into an image.
fn how_to_get_a_static_binary() -> String {
    format!(
        "install a statically linked one with `RUSTFLAGS='-C target-feature=+crt-static' \
         cargo install telepresence-mock-server --target {}-unknown-linux-gnu` and name it \
         in {BINARY_ENV}, or put it on PATH",
        std::env::consts::ARCH
    )
}

fn binary_error(message: String, source: Option<std::io::Error>) -> Error {
    Error::ServerBinary { message, source }
}

/// The binary to build from: `given`, else [`BINARY_ENV`], else `PATH`'s.
pub(super) fn find(given: Option<&Path>) -> Result<PathBuf, Error> {
    if let Some(path) = given {
        return readable(path, "given with `with_binary`");
    }
    if let Some(path) = std::env::var_os(BINARY_ENV).filter(|v| !v.is_empty()) {
        return readable(Path::new(&path), &format!("named by {BINARY_ENV}"));
    }
    let search = std::env::var_os("PATH").unwrap_or_default();
    if let Some(found) = std::env::split_paths(&search)
        .map(|dir| dir.join(BINARY_NAME))
        .find(|candidate| is_executable(candidate))
    {
        return Ok(found);
    }
    Err(binary_error(
        format!(
            "no {BINARY_NAME} binary to build the image from: none given with `with_binary`, \
             {BINARY_ENV} is unset and none is on PATH; {}",
            how_to_get_a_static_binary()
        ),
        None,
    ))
}

/// `path` if it is a file that can be read.
fn readable(path: &Path, origin: &str) -> Result<PathBuf, Error> {
    match File::open(path).and_then(|file| file.metadata()) {
        Ok(metadata) if metadata.is_file() => Ok(path.to_owned()),
        Ok(_) => Err(binary_error(
            format!("{} ({origin}) is not a file", path.display()),
            None,
        )),
        Err(error) => Err(binary_error(
            format!("cannot read {} ({origin})", path.display()),
            Some(error),
        )),
    }
}

fn is_executable(path: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        path.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        path.is_file()
    }
}

/// What goes into the build context besides the Dockerfile: source files
/// and where each goes in the context.
#[derive(Debug)]
pub(super) struct BuildContext {
    pub(super) dockerfile: String,
    pub(super) files: Vec<(PathBuf, String)>,
}

/// The build context for an image around `binary`: the binary, and when it
/// is linked dynamically the shared libraries `ldd` lists, at the same
/// paths (a `FROM scratch` image has no others).
pub(super) fn build_context(binary: &Path) -> Result<BuildContext, Error> {
    let mut files = vec![(binary.to_owned(), BINARY_NAME.to_owned())];
    let dockerfile = match linkage(binary)? {
        Linkage::Static => DOCKERFILE.to_owned(),
        Linkage::Dynamic => {
            for library in shared_libraries(binary)? {
                let target = format!("{LIBRARIES_DIR}{}", library.display());
                files.push((library, target));
            }
            format!(
                "{DOCKERFILE}\n# The shared libraries the binary links, at the paths its loader expects.\n\
                 COPY {LIBRARIES_DIR}/ /\n"
            )
        }
    };
    Ok(BuildContext { dockerfile, files })
}

/// How an executable finds its code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Linkage {
    /// Everything is in the file (static, or static-pie).
    Static,
    /// It names an interpreter (the dynamic loader), which loads shared libraries.
    Dynamic,
}

/// The ELF program header type of the interpreter's path.
const PT_INTERP: u32 = 3;

/// Whether `binary`, a Linux (ELF) executable, needs a dynamic loader: it
/// does exactly when it has a `PT_INTERP` program header. A static-pie
/// binary has dynamic relocations but no interpreter, and needs nothing.
fn linkage(binary: &Path) -> Result<Linkage, Error> {
    let unreadable = |error| {
        binary_error(
            format!("cannot read {} to inspect it", binary.display()),
            Some(error),
        )
    };
    let mut file = File::open(binary).map_err(unreadable)?;
    let mut header = [0u8; 64];
    let read = read_up_to(&mut file, &mut header).map_err(unreadable)?;
    let not_linux = || {
        binary_error(
            format!(
                "{} is not a Linux executable (ELF), and a container runs Linux binaries; {}",
                binary.display(),
                how_to_get_a_static_binary()
            ),
            None,
        )
    };
    let elf = Elf::parse(&header[..read]).ok_or_else(not_linux)?;
    let table_len = usize::from(elf.program_header_size) * usize::from(elf.program_headers);
    let mut table = vec![0u8; table_len];
    file.seek(SeekFrom::Start(elf.program_header_offset))
        .and_then(|_| file.read_exact(&mut table))
        .map_err(unreadable)?;
    let has_interpreter = table
        .chunks_exact(usize::from(elf.program_header_size))
        .any(|entry| elf.u32_at(entry, 0) == Some(PT_INTERP));
    Ok(if has_interpreter {
        Linkage::Dynamic
    } else {
        Linkage::Static
    })
}

/// Fills `buffer` as far as the file goes.
fn read_up_to(file: &mut File, buffer: &mut [u8]) -> std::io::Result<usize> {
    let mut filled = 0;
    while filled < buffer.len() {
        match file.read(&mut buffer[filled..])? {
            0 => break,
            n => filled += n,
        }
    }
    Ok(filled)
}

/// The fields of an ELF header that locate the program headers.
#[derive(Debug, PartialEq, Eq)]
struct Elf {
    little_endian: bool,
    program_header_offset: u64,
    program_header_size: u16,
    program_headers: u16,
}

impl Elf {
    /// `None` unless `header` starts a well-formed 32- or 64-bit ELF file.
    fn parse(header: &[u8]) -> Option<Self> {
        if header.get(..4)? != b"\x7fELF" {
            return None;
        }
        let wide = match header.get(4)? {
            1 => false,
            2 => true,
            _ => return None,
        };
        let little_endian = match header.get(5)? {
            1 => true,
            2 => false,
            _ => return None,
        };
        let probe = Self {
            little_endian,
            program_header_offset: 0,
            program_header_size: 0,
            program_headers: 0,
        };
        // e_phoff, e_phentsize and e_phnum, at the offsets of each class.
        let (offset, size_at, count_at) = if wide {
            (probe.u64_at(header, 0x20)?, 0x36, 0x38)
        } else {
            (u64::from(probe.u32_at(header, 0x1c)?), 0x2a, 0x2c)
        };
        let elf = Self {
            program_header_offset: offset,
            program_header_size: probe.u16_at(header, size_at)?,
            program_headers: probe.u16_at(header, count_at)?,
            ..probe
        };
        // A program header holds at least its 4-byte type.
        (elf.program_header_size >= 4).then_some(elf)
    }

    fn bytes<const N: usize>(bytes: &[u8], at: usize) -> Option<[u8; N]> {
        bytes.get(at..at + N)?.try_into().ok()
    }

    fn u16_at(&self, bytes: &[u8], at: usize) -> Option<u16> {
        let raw = Self::bytes(bytes, at)?;
        Some(if self.little_endian {
            u16::from_le_bytes(raw)
        } else {
            u16::from_be_bytes(raw)
        })
    }

    fn u32_at(&self, bytes: &[u8], at: usize) -> Option<u32> {
        let raw = Self::bytes(bytes, at)?;
        Some(if self.little_endian {
            u32::from_le_bytes(raw)
        } else {
            u32::from_be_bytes(raw)
        })
    }

    fn u64_at(&self, bytes: &[u8], at: usize) -> Option<u64> {
        let raw = Self::bytes(bytes, at)?;
        Some(if self.little_endian {
            u64::from_le_bytes(raw)
        } else {
            u64::from_be_bytes(raw)
        })
    }
}

/// The shared libraries (and the loader) `binary` needs, as `ldd` lists
/// them; as `scripts/build-images.sh` does for the broker's image.
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>, Error> {
    let refuse = |why: String, source: Option<std::io::Error>| {
        binary_error(
            format!(
                "{} is linked dynamically and its shared libraries cannot be listed ({why}), \
                 so it cannot run in a `FROM scratch` image; {}",
                binary.display(),
                how_to_get_a_static_binary()
            ),
            source,
        )
    };
    let output = std::process::Command::new("ldd")
        .arg(binary)
        .output()
        .map_err(|error| refuse("`ldd` does not run".to_owned(), Some(error)))?;
    let listing = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        let said = String::from_utf8_lossy(&output.stderr);
        return Err(refuse(format!("`ldd` says: {}", said.trim()), None));
    }
    parse_ldd(&listing).map_err(|missing| refuse(format!("`ldd` finds no {missing}"), None))
}

/// The absolute paths in `ldd`'s listing, or the first library it did not
/// find. The vDSO has no file and no path.
fn parse_ldd(listing: &str) -> Result<Vec<PathBuf>, String> {
    let mut libraries = Vec::new();
    for line in listing.lines() {
        if let Some((library, _)) = line.split_once("=> not found") {
            return Err(library.trim().to_owned());
        }
        libraries.extend(
            line.split_whitespace()
                .filter(|word| word.starts_with('/'))
                .map(PathBuf::from),
        );
    }
    Ok(libraries)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal 64-bit little-endian ELF file with program headers of the given types.
    fn elf_with(types: &[u32]) -> Vec<u8> {
        let mut file = vec![0u8; 64];
        file[..4].copy_from_slice(b"\x7fELF");
        file[4] = 2; // 64-bit
        file[5] = 1; // little-endian
        file[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        file[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        file[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for kind in types {
            let mut entry = vec![0u8; 56];
            entry[..4].copy_from_slice(&kind.to_le_bytes());
            file.extend(entry);
        }
        file
    }

    fn linkage_of(bytes: &[u8]) -> Result<Linkage, Error> {
        let dir = std::env::temp_dir().join(format!("tpk-elf-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{:x}", fastrand::u64(..)));
        std::fs::write(&path, bytes).unwrap();
        let result = linkage(&path);
        let _ = std::fs::remove_file(&path);
        result
    }

    #[test]
    fn an_interpreter_means_dynamic_linking() {
        const PT_LOAD: u32 = 1;
        const PT_DYNAMIC: u32 = 2;
        assert_eq!(
            linkage_of(&elf_with(&[6, PT_INTERP, PT_LOAD])).unwrap(),
            Linkage::Dynamic
        );
        // static-pie: dynamic relocations, no loader.
        assert_eq!(
            linkage_of(&elf_with(&[PT_LOAD, PT_DYNAMIC])).unwrap(),
            Linkage::Static
        );
    }

    #[test]
    fn this_test_binary_is_read_as_what_it_is() {
        let this = std::env::current_exe().unwrap();
        let expected = if cfg!(target_feature = "crt-static") {
            Linkage::Static
        } else {
            Linkage::Dynamic
        };
        if cfg!(target_os = "linux") {
            assert_eq!(linkage(&this).unwrap(), expected);
        }
    }

    #[test]
    fn anything_but_elf_is_refused_with_the_fix() {
        let error = linkage_of(b"#!/bin/sh\necho hi\n").unwrap_err();
        let message = error.to_string();
        assert!(message.contains("not a Linux executable"), "{message}");
        assert!(message.contains("+crt-static"), "{message}");
        assert!(linkage_of(b"\x7fELF").is_err(), "a truncated header");
    }

    #[test]
    fn ldd_listings_give_paths_and_name_what_is_missing() {
        let listing = "\tlinux-vdso.so.1 (0x00007ffd)\n\
                       \tlibgcc_s.so.1 => /lib/x86_64-linux-gnu/libgcc_s.so.1 (0x00007f38)\n\
                       \tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f38)\n\
                       \t/lib64/ld-linux-x86-64.so.2 (0x00007f38)\n";
        assert_eq!(
            parse_ldd(listing).unwrap(),
            [
                "/lib/x86_64-linux-gnu/libgcc_s.so.1",
                "/lib/x86_64-linux-gnu/libc.so.6",
                "/lib64/ld-linux-x86-64.so.2"
            ]
            .map(PathBuf::from)
        );
        assert_eq!(
            parse_ldd("\tlibfoo.so.1 => not found\n").unwrap_err(),
            "libfoo.so.1"
        );
    }

    #[test]
    fn a_binary_given_is_used_or_refused_by_name() {
        let missing = Path::new("/no/such/telepresence-mock-server");
        let error = find(Some(missing)).unwrap_err();
        assert_eq!(
            error.to_string(),
            "cannot read /no/such/telepresence-mock-server (given with `with_binary`)"
        );
        assert!(std::error::Error::source(&error).is_some());
        let this = std::env::current_exe().unwrap();
        assert_eq!(find(Some(&this)).unwrap(), this);
    }

    #[test]
    fn the_dockerfile_is_the_repositorys() {
        assert!(DOCKERFILE.contains("FROM scratch"));
        assert!(DOCKERFILE.contains("COPY telepresence-mock-server /telepresence-mock-server"));
    }
}
