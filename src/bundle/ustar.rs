//! The one tar header form a bundle uses, both ways: the writer encodes plain POSIX
//! ustar headers for regular files, and the reader accepts nothing else.

use tar::{EntryType, Header};

use super::problem::Refusal;

/// Header block size.
pub(crate) const HEADER_SIZE: usize = 512;

/// A ustar header for a regular file: mode 0644, uid/gid 0, no user or group names.
/// Sizes of 8 GiB and more use the base-256 size encoding (GNU, read by Go and GNU tar).
pub(crate) fn encode(name: &str, size: u64, mtime: u64) -> [u8; HEADER_SIZE] {
    let mut header = Header::new_ustar();
    // Layout names are at most 77 bytes, well inside the 100-byte name field.
    let field = &mut header.as_old_mut().name;
    field[..name.len()].copy_from_slice(name.as_bytes());
    header.set_size(size);
    header.set_mode(0o644);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(mtime);
    header.set_entry_type(EntryType::Regular);
    header.set_cksum();
    *header.as_bytes()
}

/// A header the reader cannot make sense of; reading stops there.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HeaderError {
    /// The checksum field does not match the block.
    #[error("tar header checksum mismatch")]
    Checksum,
    /// The size field is not a number.
    #[error("tar header size field is not a number")]
    Size,
}

/// A decoded header: the name (lossy if not UTF-8), the data size that follows it, and
/// why the entry is refused, if it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct EntryHeader {
    pub(crate) name: String,
    pub(crate) size: u64,
    pub(crate) refusal: Option<Refusal>,
}

/// True for the all-zero block that starts the end-of-archive marker.
pub(crate) fn is_zero_block(block: &[u8; HEADER_SIZE]) -> bool {
    block.iter().all(|byte| *byte == 0)
}

/// Decodes a header block strictly.
pub(crate) fn decode(block: &[u8; HEADER_SIZE]) -> Result<EntryHeader, HeaderError> {
    let header = Header::from_byte_slice(block);
    if header.cksum().ok() != Some(checksum(block)) {
        return Err(HeaderError::Checksum);
    }
    let size = header.entry_size().map_err(|_| HeaderError::Size)?;
    let old = header.as_old();
    let raw_name = until_nul(&old.name);
    let name = String::from_utf8_lossy(raw_name).into_owned();
    let refusal = type_refusal(old.linkflag[0])
        .or_else(|| match header.as_ustar() {
            None => Some(Refusal::NotUstar),
            Some(ustar) if !until_nul(&ustar.prefix).is_empty() => Some(Refusal::PrefixUsed),
            Some(_) => None,
        })
        .or_else(|| match std::str::from_utf8(raw_name) {
            Err(_) => Some(Refusal::NameNotUtf8),
            Ok(name) => path_refusal(name),
        });
    Ok(EntryHeader {
        name,
        size,
        refusal,
    })
}

/// Sum of the block's bytes with the checksum field counted as spaces.
fn checksum(block: &[u8; HEADER_SIZE]) -> u32 {
    const FIELD: std::ops::Range<usize> = 148..156;
    block
        .iter()
        .enumerate()
        .map(|(offset, byte)| {
            if FIELD.contains(&offset) {
                u32::from(b' ')
            } else {
                u32::from(*byte)
            }
        })
        .sum()
}

fn until_nul(field: &[u8]) -> &[u8] {
    field
        .iter()
        .position(|byte| *byte == 0)
        .map_or(field, |end| &field[..end])
}

/// Every entry type but a regular file is refused: a bundle holds nothing else.
fn type_refusal(type_byte: u8) -> Option<Refusal> {
    match type_byte {
        b'0' => None,
        b'1' => Some(Refusal::Hardlink),
        b'2' => Some(Refusal::Symlink),
        b'3' | b'4' => Some(Refusal::Device),
        b'5' => Some(Refusal::Directory),
        b'6' => Some(Refusal::Fifo),
        b'x' | b'g' => Some(Refusal::PaxHeader),
        b'L' | b'K' => Some(Refusal::GnuLongName),
        other => Some(Refusal::OtherType(other)),
    }
}

/// Path rules that hold whatever the layout: relative, no `.`, `..` or empty components.
fn path_refusal(name: &str) -> Option<Refusal> {
    if name.starts_with('/') {
        Some(Refusal::AbsolutePath)
    } else if name
        .split('/')
        .any(|component| component.is_empty() || component == "." || component == "..")
    {
        Some(Refusal::DotComponent)
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_name(name: &[u8], type_byte: u8) -> [u8; HEADER_SIZE] {
        let mut block = encode("x", 3, 0);
        let header = Header::from_byte_slice(&block);
        let mut header = header.clone();
        let field = &mut header.as_old_mut().name;
        field.fill(0);
        field[..name.len()].copy_from_slice(name);
        header.as_old_mut().linkflag = [type_byte];
        header.set_cksum();
        block.copy_from_slice(header.as_bytes());
        block
    }

    #[test]
    fn encodes_what_it_decodes() {
        let block = encode("blobs/sha256/ab", 1234, 1_700_000_000);
        let header = Header::from_byte_slice(&block);
        assert_eq!(header.mode().unwrap(), 0o644);
        assert_eq!(header.mtime().unwrap(), 1_700_000_000);
        assert_eq!(header.username_bytes(), Some(&b""[..]));
        assert_eq!(
            decode(&block).unwrap(),
            EntryHeader {
                name: "blobs/sha256/ab".into(),
                size: 1234,
                refusal: None
            }
        );
    }

    #[test]
    fn huge_sizes_round_trip() {
        let size = 9 * 1024 * 1024 * 1024;
        assert_eq!(decode(&encode("big", size, 0)).unwrap().size, size);
    }

    #[test]
    fn refuses_foreign_types_and_paths() {
        for (type_byte, refusal) in [
            (b'1', Refusal::Hardlink),
            (b'2', Refusal::Symlink),
            (b'3', Refusal::Device),
            (b'4', Refusal::Device),
            (b'5', Refusal::Directory),
            (b'6', Refusal::Fifo),
            (b'x', Refusal::PaxHeader),
            (b'g', Refusal::PaxHeader),
            (b'L', Refusal::GnuLongName),
            (b'\0', Refusal::OtherType(0)),
        ] {
            assert_eq!(
                decode(&with_name(b"values.yaml", type_byte))
                    .unwrap()
                    .refusal,
                Some(refusal)
            );
        }
        for (name, refusal) in [
            (&b"/etc/passwd"[..], Refusal::AbsolutePath),
            (b"blobs/../../x", Refusal::DotComponent),
            (b"./oci-layout", Refusal::DotComponent),
            (b"blobs//x", Refusal::DotComponent),
            (b"blobs/sha256/", Refusal::DotComponent),
            (b"bad\xff", Refusal::NameNotUtf8),
        ] {
            assert_eq!(
                decode(&with_name(name, b'0')).unwrap().refusal,
                Some(refusal)
            );
        }
    }

    #[test]
    fn refuses_gnu_headers_and_prefixes() {
        let mut gnu = Header::new_gnu();
        gnu.set_path("oci-layout").unwrap();
        gnu.set_size(1);
        gnu.set_entry_type(EntryType::Regular);
        gnu.set_cksum();
        assert_eq!(
            decode(gnu.as_bytes()).unwrap().refusal,
            Some(Refusal::NotUstar)
        );

        let mut ustar = Header::from_byte_slice(&encode("oci-layout", 1, 0)).clone();
        ustar.as_ustar_mut().unwrap().prefix[..3].copy_from_slice(b"etc");
        ustar.set_cksum();
        assert_eq!(
            decode(ustar.as_bytes()).unwrap().refusal,
            Some(Refusal::PrefixUsed)
        );
    }

    #[test]
    fn bad_checksum_is_an_error() {
        let mut block = encode("oci-layout", 1, 0);
        block[0] ^= 1;
        assert_eq!(decode(&block), Err(HeaderError::Checksum));
        assert!(is_zero_block(&[0; HEADER_SIZE]));
    }
}
