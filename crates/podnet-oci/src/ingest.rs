//! One layer into the store: the blob stream is hashed and written to a temporary blob file while it is
//! decompressed, hashed again (the diffID) and unpacked into a temporary snapshot. Both are committed only
//! when both digests match; on any error both temporaries are removed.

use std::io::{Read, Write};

use crate::digest::{Digest, Hasher, HashingReader};
use crate::fsutil;
use crate::manifest::Compression;
use crate::store::{LayerRecord, Store, StoreError, io};

/// Tees what is read into a file (when given) and a hasher.
struct Tee<R> {
    inner: R,
    file: Option<std::io::BufWriter<std::fs::File>>,
    hasher: Hasher,
}

impl<R: Read> Read for Tee<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        if let Some(f) = &mut self.file {
            f.write_all(&buf[..n])?;
        }
        Ok(n)
    }
}

/// Ingest `layer` of `image` from `src` (the compressed blob). The caller holds the layer's lock and
/// has checked what is missing: `want_blob` stores the blob, `want_snapshot` unpacks it.
pub(crate) fn ingest_layer(
    store: &Store,
    image: &str,
    layer: &LayerRecord,
    src: impl Read,
    want_blob: bool,
    want_snapshot: bool,
) -> Result<(), StoreError> {
    store.clear_stale(layer.digest.hex());
    store.clear_stale(layer.diff_id.hex());
    let blob_tmp = store.ingest_path(&layer.digest);
    let snap_tmp = store.tmp_snapshot_path(&layer.diff_id);
    let result = run(
        store,
        image,
        layer,
        src,
        want_blob,
        want_snapshot,
        &blob_tmp,
        &snap_tmp,
    );
    if result.is_err() {
        let _ = fsutil::remove_any(&blob_tmp);
        let _ = fsutil::remove_any(&snap_tmp);
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn run(
    store: &Store,
    image: &str,
    layer: &LayerRecord,
    src: impl Read,
    want_blob: bool,
    want_snapshot: bool,
    blob_tmp: &std::path::Path,
    snap_tmp: &std::path::Path,
) -> Result<(), StoreError> {
    let file = if want_blob {
        let f = std::fs::File::create(blob_tmp).map_err(io("create blob", blob_tmp))?;
        Some(std::io::BufWriter::with_capacity(1 << 20, f))
    } else {
        None
    };
    let mut tee = Tee {
        inner: src,
        file,
        hasher: Hasher::new(layer.digest.algorithm()),
    };
    let mut diff_actual = None;
    if want_snapshot
        && let Err(e) = unpack_phase(&mut tee, layer, snap_tmp, image, &mut diff_actual)
    {
        // A corrupt blob usually breaks the decompressor first: say it was the digest, if it was.
        let _ = std::io::copy(&mut tee, &mut std::io::sink());
        let actual =
            std::mem::replace(&mut tee.hasher, Hasher::new(layer.digest.algorithm())).finish();
        if actual != layer.digest {
            return Err(StoreError::DigestMismatch {
                what: format!("layer {} of {image}", layer.digest),
                expected: layer.digest.clone(),
                actual,
            });
        }
        return Err(e);
    }
    finish(
        tee,
        store,
        image,
        layer,
        want_snapshot,
        diff_actual,
        blob_tmp,
        snap_tmp,
    )
}

fn unpack_phase<R: Read>(
    tee: &mut Tee<R>,
    layer: &LayerRecord,
    snap_tmp: &std::path::Path,
    image: &str,
    diff_actual: &mut Option<Digest>,
) -> Result<(), StoreError> {
    let unpack_err = |cause| StoreError::Unpack {
        digest: layer.digest.clone(),
        image: image.to_string(),
        cause,
    };
    let read_err = |e: std::io::Error| StoreError::Invalid {
        what: format!("layer {} of {image}", layer.digest),
        detail: e.to_string(),
    };
    std::fs::create_dir(snap_tmp).map_err(io("create snapshot", snap_tmp))?;
    let algo = layer.diff_id.algorithm();
    // Decompress, hash the tar (diffID), unpack; then read the tar stream to its end so the hash
    // covers every byte (tar padding).
    let diff = match layer.compression {
        Compression::None => {
            let mut r = HashingReader::new(&mut *tee, algo);
            crate::unpack::unpack(&mut r, snap_tmp).map_err(unpack_err)?;
            std::io::copy(&mut r, &mut std::io::sink()).map_err(read_err)?;
            r.into_parts().1.finish()
        }
        Compression::Gzip => {
            let mut r = HashingReader::new(flate2::read::MultiGzDecoder::new(&mut *tee), algo);
            crate::unpack::unpack(&mut r, snap_tmp).map_err(unpack_err)?;
            std::io::copy(&mut r, &mut std::io::sink()).map_err(read_err)?;
            r.into_parts().1.finish()
        }
        Compression::Zstd => {
            let dec = zstd::stream::read::Decoder::new(&mut *tee).map_err(read_err)?;
            let mut r = HashingReader::new(dec, algo);
            crate::unpack::unpack(&mut r, snap_tmp).map_err(unpack_err)?;
            std::io::copy(&mut r, &mut std::io::sink()).map_err(read_err)?;
            r.into_parts().1.finish()
        }
    };
    *diff_actual = Some(diff);
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn finish<R: Read>(
    mut tee: Tee<R>,
    store: &Store,
    image: &str,
    layer: &LayerRecord,
    want_snapshot: bool,
    diff_actual: Option<Digest>,
    blob_tmp: &std::path::Path,
    snap_tmp: &std::path::Path,
) -> Result<(), StoreError> {
    let read_err = |e: std::io::Error| StoreError::Invalid {
        what: format!("layer {} of {image}", layer.digest),
        detail: e.to_string(),
    };
    std::io::copy(&mut tee, &mut std::io::sink()).map_err(read_err)?;
    let Tee { file, hasher, .. } = tee;
    let size = hasher.len();
    let actual = hasher.finish();
    if actual != layer.digest {
        return Err(StoreError::DigestMismatch {
            what: format!("layer {} of {image} ({size} bytes)", layer.digest),
            expected: layer.digest.clone(),
            actual,
        });
    }
    if let Some(diff) = diff_actual
        && diff != layer.diff_id
    {
        return Err(StoreError::DigestMismatch {
            what: format!("uncompressed layer {} of {image} (diffID)", layer.digest),
            expected: layer.diff_id.clone(),
            actual: diff,
        });
    }
    if let Some(f) = file {
        let f = f
            .into_inner()
            .map_err(|e| io("write blob", blob_tmp)(e.into_error()))?;
        f.sync_all().map_err(io("sync blob", blob_tmp))?;
        let dest = store.blob_path(&layer.digest);
        std::fs::rename(blob_tmp, &dest).map_err(io("commit blob", &dest))?;
        if let Some(parent) = dest.parent() {
            let _ = fsutil::sync_dir(parent);
        }
    }
    if want_snapshot {
        store.commit_snapshot(snap_tmp, &layer.diff_id)?;
    }
    Ok(())
}

/// Whether the layer is fully in the store (blob and snapshot).
pub(crate) fn missing(store: &Store, layer: &LayerRecord) -> (bool, bool) {
    (
        !store.has_blob(&layer.digest),
        store.snapshot(&layer.diff_id).is_none(),
    )
}

/// Verify a digest over a reader, returning the bytes read (for small documents from archives).
pub(crate) fn read_verified(
    mut r: impl Read,
    want: &Digest,
    what: &str,
) -> Result<Vec<u8>, StoreError> {
    let mut buf = Vec::new();
    r.read_to_end(&mut buf).map_err(|e| StoreError::Invalid {
        what: what.to_string(),
        detail: e.to_string(),
    })?;
    let mut h = Hasher::new(want.algorithm());
    h.update(&buf);
    let actual = h.finish();
    if &actual != want {
        return Err(StoreError::DigestMismatch {
            what: what.to_string(),
            expected: want.clone(),
            actual,
        });
    }
    Ok(buf)
}
