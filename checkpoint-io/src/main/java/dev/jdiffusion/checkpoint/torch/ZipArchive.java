package dev.jdiffusion.checkpoint.torch;

import dev.jdiffusion.checkpoint.CheckpointFormatException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteOrder;
import java.util.Collections;
import java.util.LinkedHashMap;
import java.util.Map;
import java.util.zip.CRC32;
import java.util.zip.DataFormatException;
import java.util.zip.Inflater;

/**
 * The records of a zip archive held in memory or mapped from a file, as torch's zip checkpoints
 * use it: the central directory is read (zip64 included), and a record's bytes are a view of the
 * mapping when it is stored uncompressed (torch stores every record so, aligned to 64 bytes), or
 * inflated on request when it is deflated. Every offset and size is checked against the archive
 * before it is used, so a damaged or hostile archive fails with a {@link CheckpointFormatException}.
 */
public final class ZipArchive {
    private static final ValueLayout.OfInt U32 = ValueLayout.JAVA_INT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfShort U16 = ValueLayout.JAVA_SHORT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong U64 = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int EOCD = 0x06054b50;
    private static final int ZIP64_EOCD = 0x06064b50;
    private static final int ZIP64_LOCATOR = 0x07064b50;
    private static final int CENTRAL = 0x02014b50;
    private static final int LOCAL = 0x04034b50;
    /** Deflate cannot expand data by more than about 1032:1; a larger claim is a lie. */
    private static final long MAX_DEFLATE_RATIO = 1100;

    /** One record: its name, compression method, sizes, CRC and where its data begins. */
    public record Entry(String name, int method, long compressedSize, long size, int crc, long dataOffset) {
    }

    private final String source;
    private final MemorySegment data;
    private final Map<String, Entry> entries;

    private ZipArchive(String source, MemorySegment data, Map<String, Entry> entries) {
        this.source = source;
        this.data = data;
        this.entries = entries;
    }

    /** True if {@code data} begins like a zip archive (a local file header or an empty archive). */
    public static boolean looksLikeZip(MemorySegment data) {
        if (data.byteSize() < 4) {
            return false;
        }
        int sig = data.get(U32, 0);
        return sig == LOCAL || sig == EOCD;
    }

    /** Reads the central directory of {@code data}; {@code source} names it in messages. */
    public static ZipArchive read(MemorySegment data, String source) throws CheckpointFormatException {
        long size = data.byteSize();
        long eocd = -1;
        for (long at = size - 22; at >= Math.max(0, size - 22 - 65535); at--) {
            if (data.get(U32, at) == EOCD) {
                eocd = at;
                break;
            }
        }
        if (eocd < 0) {
            throw new CheckpointFormatException(source + ": not a complete zip archive: no end-of-central-directory "
                    + "record (the file is truncated or not a zip)");
        }
        long count = u16(data, eocd + 10);
        long cdSize = u32(data, eocd + 12);
        long cdOffset = u32(data, eocd + 16);
        if (count == 0xffff || cdSize == 0xffffffffL || cdOffset == 0xffffffffL) {
            long loc = eocd - 20;
            if (loc < 0 || data.get(U32, loc) != ZIP64_LOCATOR) {
                throw new CheckpointFormatException(source + ": zip64 archive without its end-of-central-directory locator");
            }
            long z = data.get(U64, loc + 8);
            if (z < 0 || z > size - 56 || data.get(U32, z) != ZIP64_EOCD) {
                throw new CheckpointFormatException(source + ": zip64 end-of-central-directory record out of place");
            }
            count = data.get(U64, z + 32);
            cdSize = data.get(U64, z + 40);
            cdOffset = data.get(U64, z + 48);
        }
        if (cdOffset < 0 || cdSize < 0 || cdOffset > size || cdSize > size - cdOffset) {
            throw new CheckpointFormatException(source + ": central directory (offset " + cdOffset + ", " + cdSize
                    + " bytes) lies outside the file of " + size + " bytes");
        }
        if (count < 0 || count > cdSize / 46) {
            throw new CheckpointFormatException(source + ": central directory claims " + count + " records in "
                    + cdSize + " bytes");
        }
        Map<String, Entry> entries = new LinkedHashMap<>();
        long at = cdOffset;
        long end = cdOffset + cdSize;
        for (long i = 0; i < count; i++) {
            if (at + 46 > end || data.get(U32, at) != CENTRAL) {
                throw new CheckpointFormatException(source + ": damaged central directory at byte " + at);
            }
            int flags = u16(data, at + 8);
            int method = u16(data, at + 10);
            int crc = data.get(U32, at + 16);
            long csize = u32(data, at + 20);
            long usize = u32(data, at + 24);
            int nameLen = u16(data, at + 28);
            int extraLen = u16(data, at + 30);
            int commentLen = u16(data, at + 32);
            long local = u32(data, at + 42);
            long next = at + 46 + nameLen + extraLen + commentLen;
            if (next > end) {
                throw new CheckpointFormatException(source + ": damaged central directory at byte " + at);
            }
            String name = new String(data.asSlice(at + 46, nameLen).toArray(ValueLayout.JAVA_BYTE),
                    (flags & 0x800) != 0 ? java.nio.charset.StandardCharsets.UTF_8
                            : java.nio.charset.StandardCharsets.ISO_8859_1);
            // zip64 extra field: the 64-bit values of the fields that read 0xffffffff, in this order
            long x = at + 46 + nameLen;
            long xEnd = x + extraLen;
            while (x + 4 <= xEnd) {
                int id = u16(data, x);
                int len = u16(data, x + 2);
                if (x + 4 + len > xEnd) {
                    break;
                }
                if (id == 0x0001) {
                    long p = x + 4;
                    long pEnd = p + len;
                    if (usize == 0xffffffffL && p + 8 <= pEnd) {
                        usize = data.get(U64, p);
                        p += 8;
                    }
                    if (csize == 0xffffffffL && p + 8 <= pEnd) {
                        csize = data.get(U64, p);
                        p += 8;
                    }
                    if (local == 0xffffffffL && p + 8 <= pEnd) {
                        local = data.get(U64, p);
                    }
                }
                x += 4 + len;
            }
            if ((flags & 1) != 0) {
                throw new CheckpointFormatException(source + ": record \"" + name + "\" is encrypted");
            }
            if (method != 0 && method != 8) {
                throw new CheckpointFormatException(source + ": record \"" + name + "\" uses compression method "
                        + method + " (only stored and deflated records are read)");
            }
            if (local < 0 || local > size - 30 || data.get(U32, local) != LOCAL) {
                throw new CheckpointFormatException(source + ": record \"" + name + "\": local header at byte " + local
                        + " is missing (truncated or damaged archive)");
            }
            long dataOffset = local + 30 + u16(data, local + 26) + u16(data, local + 28);
            if (csize < 0 || usize < 0 || dataOffset > size || csize > size - dataOffset) {
                throw new CheckpointFormatException(source + ": record \"" + name + "\" (" + csize
                        + " bytes at byte " + dataOffset + ") runs past the end of the archive");
            }
            if (method == 0 && csize != usize) {
                throw new CheckpointFormatException(source + ": stored record \"" + name + "\" has size " + usize
                        + " but occupies " + csize + " bytes");
            }
            if (method == 8 && usize > Math.max(1024, csize * MAX_DEFLATE_RATIO)) {
                throw new CheckpointFormatException(source + ": deflated record \"" + name + "\" claims " + usize
                        + " bytes from " + csize + " compressed ones");
            }
            if (entries.put(name, new Entry(name, method, csize, usize, crc, dataOffset)) != null) {
                throw new CheckpointFormatException(source + ": record \"" + name + "\" appears twice");
            }
            at = next;
        }
        return new ZipArchive(source, data, Collections.unmodifiableMap(entries));
    }

    private static int u16(MemorySegment d, long at) {
        return d.get(U16, at) & 0xffff;
    }

    private static long u32(MemorySegment d, long at) {
        return d.get(U32, at) & 0xffffffffL;
    }

    /** The records in central-directory order. */
    public Map<String, Entry> entries() {
        return entries;
    }

    /**
     * A record's bytes: a view of the archive for a stored record, an inflated copy for a deflated
     * one. With {@code verify}, the CRC-32 is checked too (it costs a pass over the data).
     */
    public MemorySegment read(String name, boolean verify) throws CheckpointFormatException {
        Entry e = entries.get(name);
        if (e == null) {
            throw new CheckpointFormatException(source + ": record \"" + name + "\" is missing from the archive");
        }
        MemorySegment raw = data.asSlice(e.dataOffset(), e.compressedSize());
        MemorySegment out = e.method() == 0 ? raw : inflate(e, raw);
        if (verify) {
            CRC32 crc = new CRC32();
            crc.update(out.asByteBuffer());
            if ((int) crc.getValue() != e.crc()) {
                throw new CheckpointFormatException(source + ": record \"" + name + "\" fails its CRC-32 check");
            }
        }
        return out;
    }

    private MemorySegment inflate(Entry e, MemorySegment raw) throws CheckpointFormatException {
        if (e.size() > Integer.MAX_VALUE - 8) {
            throw new CheckpointFormatException(source + ": deflated record \"" + e.name() + "\" of " + e.size()
                    + " bytes is too large to inflate");
        }
        byte[] out = new byte[(int) e.size()];
        Inflater inf = new Inflater(true);
        try {
            inf.setInput(raw.asByteBuffer());
            int n = 0;
            while (n < out.length) {
                int got = inf.inflate(out, n, out.length - n);
                if (got == 0 && (inf.finished() || inf.needsInput() || inf.needsDictionary())) {
                    break;
                }
                n += got;
            }
            if (n != out.length) {
                throw new CheckpointFormatException(source + ": deflated record \"" + e.name() + "\" inflates to "
                        + n + " bytes, its header says " + out.length);
            }
        } catch (DataFormatException ex) {
            throw new CheckpointFormatException(source + ": deflated record \"" + e.name() + "\" is damaged: "
                    + ex.getMessage());
        } finally {
            inf.end();
        }
        return MemorySegment.ofArray(out);
    }
}
