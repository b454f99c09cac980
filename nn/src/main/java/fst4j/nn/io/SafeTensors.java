package fst4j.nn.io;

import fst4j.tensor.DType;
import fst4j.tensor.Tensor;

import java.io.IOException;
import java.lang.foreign.MemorySegment;
import java.lang.foreign.ValueLayout;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.AtomicMoveNotSupportedException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.StandardCopyOption;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Collections;
import java.util.Comparator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.zip.CRC32C;

/**
 * Reads and writes the <a href="https://github.com/huggingface/safetensors">safetensors</a> format: an 8-byte
 * little-endian header length N, N bytes of UTF-8 JSON
 * {@code {"__metadata__":{"k":"v",...},"name":{"dtype":"F32","shape":[..],"data_offsets":[begin,end]},...}}
 * padded with spaces so that 8 + N is a multiple of 8, then the raw little-endian data; offsets are relative to
 * the start of the data. Supported dtypes: F32 and F64 (as {@link Tensor}s) and I64 (as {@code long[]}, for step
 * counters and RNG state).
 *
 * <p>The writer is deterministic: entries are laid out by element size (8-byte types first, so every entry is
 * aligned to its element size) and then by name; the header is compact JSON with {@code __metadata__} first.
 * Writes are atomic: the file is written to a temporary file in the same directory, forced to disk, then
 * moved over the target with {@link StandardCopyOption#ATOMIC_MOVE}.
 *
 * <p>The reader validates the whole header before it allocates a tensor: header length within the file, well-formed
 * JSON, known dtypes, non-negative shapes, offsets in range, not overlapping and of size product(shape) times the
 * element size. Any problem is a {@link DataFormatException} naming the file and the problem.
 *
 * <p>Checksums: a file this class writes carries a CRC-32C of each entry and one of its other metadata, as metadata
 * strings (8 lowercase hex digits) under the keys {@value #CRC_PREFIX}{@code <entry name>} and {@value #CRC_METADATA},
 * so that a flipped bit in the data, a dtype, a shape or a metadata value (which the structural checks above cannot
 * always see: the shape of an empty tensor, say) is refused by name instead of loading silently different numbers. An
 * entry's checksum covers the ASCII text {@code <dtype>[<d0>,<d1>,...]} (for example {@code F32[2,3]}, {@code I64[1]},
 * {@code F64[]}) followed by its little-endian data bytes; the metadata's covers each other key and value, in the order
 * of the keys' UTF-8 bytes, as a 4-byte little-endian length and the UTF-8 bytes. The format stays plain safetensors
 * (other readers see extra metadata). The reader checks each entry as it reads it (so a corrupt entry is found after
 * the entries before it were read), whenever the file has checksums, and then requires one for every entry; a file
 * without any (another writer's, or fst4j's before session 44) is read unchecked. {@link Contents#metadata()} never
 * shows these keys; the writer refuses metadata keys that start with {@value #CRC_PREFIX}, and the reader refuses a
 * file whose metadata uses that prefix for anything else. A file edited by another tool that kept the old metadata
 * fails the check: drop the {@value #CRC_PREFIX} keys from its metadata to read it unchecked. Names, keys and values
 * must be well-formed UTF-16 (no unpaired surrogate, which UTF-8 cannot carry).
 */
public final class SafeTensors {
    private SafeTensors() {}

    /** Key of the string-to-string metadata object in the header. */
    public static final String METADATA_KEY = "__metadata__";
    /** Prefix of the metadata keys holding the checksums (see the class comment). */
    public static final String CRC_PREFIX = "crc32c:";
    /** Metadata key of the checksum over the other metadata (no entry may be called __metadata__, so it names none). */
    public static final String CRC_METADATA = CRC_PREFIX + METADATA_KEY;
    /** Largest header the reader accepts (the reference implementation's limit). */
    public static final long MAX_HEADER_BYTES = 100L << 20;

    private static final ValueLayout.OfFloat F32_LE = ValueLayout.JAVA_FLOAT_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfDouble F64_LE = ValueLayout.JAVA_DOUBLE_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final ValueLayout.OfLong I64_LE = ValueLayout.JAVA_LONG_UNALIGNED.withOrder(ByteOrder.LITTLE_ENDIAN);
    private static final int CHUNK = 1 << 20;

    /**
     * What a file holds. Tensors are created open in the caller's current {@link fst4j.tensor.Scope} (if any);
     * {@link #close()} closes them all. Int64 entries of any shape are returned flattened (row-major). Maps keep
     * the order of the file's header.
     */
    public record Contents(Map<String, Tensor> tensors, Map<String, long[]> int64s, Map<String, String> metadata)
            implements AutoCloseable {
        public Contents {
            tensors = Collections.unmodifiableMap(tensors);
            int64s = Collections.unmodifiableMap(int64s);
            metadata = Collections.unmodifiableMap(metadata);
        }

        /** The tensor called name, or IllegalArgumentException listing the names there are. */
        public Tensor tensor(String name) {
            Tensor t = tensors.get(name);
            if (t == null) throw new IllegalArgumentException("no tensor " + Json.quote(name) + "; tensors are " + tensors.keySet());
            return t;
        }

        /** The int64 array called name, or IllegalArgumentException listing the names there are. */
        public long[] int64(String name) {
            long[] v = int64s.get(name);
            if (v == null) throw new IllegalArgumentException("no int64 entry " + Json.quote(name) + "; int64 entries are " + int64s.keySet());
            return v;
        }

        @Override
        public void close() { tensors.values().forEach(Tensor::close); }
    }

    // ------------------------------------------------------------------ writing

    /** Writes tensors only. */
    public static void write(Path file, Map<String, Tensor> tensors) throws IOException {
        write(file, tensors, Map.of(), Map.of());
    }

    /**
     * Writes tensors (F32/F64, any layout; non-contiguous ones are copied), int64 arrays (stored with shape
     * [length]) and string metadata to file, atomically. Null maps count as empty. Names must be unique across
     * both maps, non-empty, and not {@value #METADATA_KEY}.
     */
    public static void write(Path file, Map<String, Tensor> tensors, Map<String, long[]> int64s,
                             Map<String, String> metadata) throws IOException {
        tensors = tensors == null ? Map.of() : tensors;
        int64s = int64s == null ? Map.of() : int64s;
        // one copy, validated, checksummed and written: a map changed by another thread meanwhile cannot split them
        Map<String, String> md = new TreeMap<>();
        if (metadata != null)
            for (var m : metadata.entrySet()) {
                if (m.getKey() == null) throw new IllegalArgumentException("a metadata key is null");
                if (m.getValue() == null) throw new IllegalArgumentException("metadata " + Json.quote(m.getKey()) + " is null");
                if (m.getKey().startsWith(CRC_PREFIX))
                    throw new IllegalArgumentException("metadata key " + Json.quote(m.getKey()) + ": keys starting with " + CRC_PREFIX + " hold the checksums");
                wellFormed("metadata key", m.getKey());
                wellFormed("metadata value of " + Json.quote(m.getKey()), m.getValue());
                md.put(m.getKey(), m.getValue());
            }

        record Entry(String name, String dtype, int elemBytes, long[] shape, Tensor tensor, long[] longs) {
            long bytes() {
                long n = elemBytes;
                for (long d : shape) n = Math.multiplyExact(n, d);
                return n;
            }
        }
        List<Entry> entries = new ArrayList<>();
        for (var e : tensors.entrySet()) {
            checkName(e.getKey(), int64s);
            Tensor t = e.getValue();
            if (t == null) throw new IllegalArgumentException("tensor " + Json.quote(e.getKey()) + " is null");
            t.check();
            int[] s = t.shape();
            long[] shape = new long[s.length];
            for (int k = 0; k < s.length; k++) shape[k] = s[k];
            String dt = switch (t.dtype()) {
                case F32 -> "F32";
                case F64 -> "F64";
                default -> throw new IllegalArgumentException("tensor " + Json.quote(e.getKey()) + " has dtype " + t.dtype() + "; safetensors writes F32 and F64");
            };
            entries.add(new Entry(e.getKey(), dt, t.dtype().bytes, shape, t, null));
        }
        for (var e : int64s.entrySet()) {
            checkName(e.getKey(), Map.of());
            long[] v = e.getValue();
            if (v == null) throw new IllegalArgumentException("int64 entry " + Json.quote(e.getKey()) + " is null");
            entries.add(new Entry(e.getKey(), "I64", 8, new long[]{v.length}, null, v));
        }
        entries.sort(Comparator.comparingInt((Entry en) -> -en.elemBytes()).thenComparing(Entry::name));

        // the header holds each entry's checksum, known only once its data is written: first written with zeros, then
        // again over the same bytes (every checksum is 8 hex digits, so the header's length does not change)
        Map<String, String> sums = new TreeMap<>(md);
        sums.put(CRC_METADATA, hex(metadataCrc(md)));
        for (Entry en : entries) sums.put(CRC_PREFIX + en.name(), hex(0));
        int[] crcs = new int[entries.size()];
        List<Slot> slots = entries.stream().map(en -> new Slot(en.name(), en.dtype(), en.shape(), en.bytes())).toList();
        ByteBuffer head = header(slots, sums);
        if (head.remaining() - 8 > MAX_HEADER_BYTES)
            throw new IllegalArgumentException("the header would take " + (head.remaining() - 8) + " bytes, over the " + MAX_HEADER_BYTES
                    + "-byte limit readers accept (" + entries.size() + " entries)");

        Path target = file.toAbsolutePath();
        Path dir = target.getParent();
        Files.createDirectories(dir);
        Path tmp = IoText.sibling(target, ".tmp");
        try {
            Files.createFile(tmp);
        } catch (IOException e) {   // named by the file wanted, not by the temporary one
            throw new IOException("cannot write " + target + ": " + IoText.reason(e), e);
        }
        boolean done = false;
        try {
            try (FileChannel ch = FileChannel.open(tmp, StandardOpenOption.WRITE, StandardOpenOption.TRUNCATE_EXISTING)) {
                int headBytes = head.remaining();
                writeFully(ch, head);
                ByteBuffer buf = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
                MemorySegment bufSeg = MemorySegment.ofBuffer(buf);
                CRC32C crc = new CRC32C();
                for (int i = 0; i < entries.size(); i++) {
                    Entry en = entries.get(i);
                    crc.reset();
                    crc.update(specText(en.dtype(), en.shape()));
                    if (en.longs() != null) {
                        writeLongs(ch, en.longs(), buf, bufSeg, crc);
                    } else {
                        // a CUDA tensor is copied to the host first (an alias for a host one)
                        try (Tensor onHost = en.tensor().to(fst4j.tensor.Device.CPU); Tensor c = onHost.contiguous()) {
                            writeSegment(ch, c.data(), c.dtype(), buf, bufSeg, crc);
                        }
                    }
                    crcs[i] = (int) crc.getValue();
                }
                for (int i = 0; i < entries.size(); i++) sums.put(CRC_PREFIX + entries.get(i).name(), hex(crcs[i]));
                head = header(slots, sums);
                if (head.remaining() != headBytes) throw new IllegalStateException("the header changed length with its checksums");
                for (long at = 0; head.hasRemaining(); ) at += ch.write(head, at);
                ch.force(true);
            }
            try {
                Files.move(tmp, target, StandardCopyOption.ATOMIC_MOVE, StandardCopyOption.REPLACE_EXISTING);
            } catch (AtomicMoveNotSupportedException ex) {
                throw new IOException("cannot write " + target + " atomically: " + ex.getMessage(), ex);
            }
            done = true;
            fsyncDirectory(dir);
        } finally {
            if (!done) Files.deleteIfExists(tmp);
        }
    }

    private static void checkName(String name, Map<String, long[]> other) {
        if (name == null || name.isEmpty()) throw new IllegalArgumentException("safetensors entry names must be non-empty");
        wellFormed("entry name", name);
        if (name.equals(METADATA_KEY)) throw new IllegalArgumentException(METADATA_KEY + " is reserved for metadata");
        if (other.containsKey(name)) throw new IllegalArgumentException("name " + Json.quote(name) + " is both a tensor and an int64 entry");
    }

    /** An entry's place in the header. */
    private record Slot(String name, String dtype, long[] shape, long bytes) {}

    /** The 8-byte length and the compact JSON header, padded with spaces to a multiple of 8, ready to write. */
    private static ByteBuffer header(List<Slot> slots, Map<String, String> metadata) {
        StringBuilder h = new StringBuilder("{");
        if (!metadata.isEmpty()) {
            h.append(Json.quote(METADATA_KEY)).append(":{");
            boolean first = true;
            for (var m : new TreeMap<>(metadata).entrySet()) {
                if (!first) h.append(',');
                first = false;
                h.append(Json.quote(m.getKey())).append(':').append(Json.quote(m.getValue()));
            }
            h.append('}');
        }
        long offset = 0;
        for (Slot en : slots) {
            if (h.length() > 1) h.append(',');
            h.append(Json.quote(en.name())).append(":{\"dtype\":\"").append(en.dtype()).append("\",\"shape\":[");
            for (int k = 0; k < en.shape().length; k++) h.append(k > 0 ? "," : "").append(en.shape()[k]);
            long end = offset + en.bytes();
            h.append("],\"data_offsets\":[").append(offset).append(',').append(end).append("]}");
            offset = end;
        }
        h.append('}');
        byte[] json = h.toString().getBytes(StandardCharsets.UTF_8);
        int padded = (json.length + 7) & ~7;
        ByteBuffer head = ByteBuffer.allocate(8 + padded).order(ByteOrder.LITTLE_ENDIAN);
        head.putLong(padded).put(json);
        while (head.hasRemaining()) head.put((byte) ' ');
        return head.flip();
    }

    private static String hex(int crc) { return String.format("%08x", crc); }

    /** Refuses an unpaired surrogate: UTF-8 cannot carry it (it became '?', so a name or key was silently renamed). */
    private static void wellFormed(String what, String s) {
        for (int i = 0; i < s.length(); i++) {
            char ch = s.charAt(i);
            if (Character.isHighSurrogate(ch) && i + 1 < s.length() && Character.isLowSurrogate(s.charAt(i + 1))) { i++; continue; }
            if (Character.isSurrogate(ch))
                throw new IllegalArgumentException(what + " " + Json.quote(s) + " has an unpaired surrogate at index " + i + ": not valid Unicode");
        }
    }

    /** What an entry's checksum starts with: its dtype and shape as ASCII, e.g. "F32[2,3]". */
    private static byte[] specText(String dtype, long[] shape) {
        StringBuilder b = new StringBuilder(dtype).append('[');
        for (int k = 0; k < shape.length; k++) b.append(k > 0 ? "," : "").append(shape[k]);
        return b.append(']').toString().getBytes(StandardCharsets.US_ASCII);
    }

    /**
     * CRC-32C of the metadata other than the checksums, in the order of the keys' UTF-8 bytes (what a reader in another
     * language sorts by without knowing Java's UTF-16 order): each key and value as a 4-byte little-endian length and its
     * UTF-8 bytes (lengths keep any two different maps apart).
     */
    private static int metadataCrc(Map<String, String> metadata) {
        List<byte[][]> kv = new ArrayList<>();
        for (var m : metadata.entrySet())
            if (!m.getKey().startsWith(CRC_PREFIX))
                kv.add(new byte[][]{m.getKey().getBytes(StandardCharsets.UTF_8), m.getValue().getBytes(StandardCharsets.UTF_8)});
        kv.sort((a, b) -> java.util.Arrays.compareUnsigned(a[0], b[0]));
        CRC32C crc = new CRC32C();
        ByteBuffer len = ByteBuffer.allocate(4).order(ByteOrder.LITTLE_ENDIAN);
        for (byte[][] e : kv)
            for (byte[] b : e) {
                crc.update(len.clear().putInt(b.length).flip());
                crc.update(b);
            }
        return (int) crc.getValue();
    }

    private static void writeFully(FileChannel ch, ByteBuffer b) throws IOException {
        while (b.hasRemaining()) ch.write(b);
    }

    private static void writeSegment(FileChannel ch, MemorySegment src, DType dtype, ByteBuffer buf, MemorySegment bufSeg, CRC32C crc) throws IOException {
        int eb = dtype.bytes;
        long n = src.byteSize() / eb;
        long per = CHUNK / eb;
        for (long done = 0; done < n; ) {
            long k = Math.min(per, n - done);
            if (dtype == DType.F32)
                MemorySegment.copy(src, ValueLayout.JAVA_FLOAT_UNALIGNED, done * eb, bufSeg, F32_LE, 0, k);
            else
                MemorySegment.copy(src, ValueLayout.JAVA_DOUBLE_UNALIGNED, done * eb, bufSeg, F64_LE, 0, k);
            buf.clear().limit((int) (k * eb));
            crc.update(buf.array(), 0, buf.limit());
            writeFully(ch, buf);
            done += k;
        }
    }

    private static void writeLongs(FileChannel ch, long[] v, ByteBuffer buf, MemorySegment bufSeg, CRC32C crc) throws IOException {
        int per = CHUNK / 8;
        for (int done = 0; done < v.length; ) {
            int k = Math.min(per, v.length - done);
            MemorySegment.copy(v, done, bufSeg, I64_LE, 0, k);
            buf.clear().limit(k * 8);
            crc.update(buf.array(), 0, buf.limit());
            writeFully(ch, buf);
            done += k;
        }
    }

    private static void fsyncDirectory(Path dir) {
        try (FileChannel d = FileChannel.open(dir, StandardOpenOption.READ)) {
            d.force(true);
        } catch (IOException | UnsupportedOperationException ignored) {
            // not every platform can open or sync a directory; the rename itself is still atomic
        }
    }

    // ------------------------------------------------------------------ reading

    /** One validated header entry. */
    private record Spec(String name, String dtype, int[] shape, long numel, long begin, long end) {}

    /** Reads and validates file; see the class comment. The caller owns the returned tensors. */
    public static Contents read(Path file) throws IOException {
        try (FileChannel ch = FileChannel.open(file, StandardOpenOption.READ)) {
            long size = ch.size();
            if (size < 8) throw new DataFormatException(file, 0, "file is " + size + " bytes, too short for the 8-byte header length");
            ByteBuffer lenBuf = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN);
            readFully(ch, lenBuf, 0, file);
            long n = lenBuf.flip().getLong();
            if (n < 2 || n > size - 8)
                throw new DataFormatException(file, 0, "header length " + Long.toUnsignedString(n) + " does not fit in a file of " + size + " bytes");
            if (n > MAX_HEADER_BYTES)
                throw new DataFormatException(file, 0, "header length " + n + " exceeds the " + MAX_HEADER_BYTES + "-byte limit");
            ByteBuffer hb = ByteBuffer.allocate((int) n);
            readFully(ch, hb, 8, file);
            hb.flip();
            String json;
            try {
                json = StandardCharsets.UTF_8.newDecoder().onMalformedInput(CodingErrorAction.REPORT)
                        .onUnmappableCharacter(CodingErrorAction.REPORT).decode(hb).toString();
            } catch (CharacterCodingException ex) {
                throw new DataFormatException(file, 8, "header is not valid UTF-8", ex);
            }
            Object root;
            try {
                root = Json.parse(json);
            } catch (Json.ParseException ex) {
                long at = 8 + json.substring(0, Math.min(ex.pos, json.length())).getBytes(StandardCharsets.UTF_8).length;
                throw new DataFormatException(file, at, "header is not valid JSON: " + ex.getMessage(), ex);
            }
            if (!(root instanceof Map<?, ?> top)) throw new DataFormatException(file, 8, "header is not a JSON object");

            long dataStart = 8 + n;
            long dataLen = size - dataStart;
            Map<String, String> metadata = new LinkedHashMap<>();
            List<Spec> specs = new ArrayList<>();
            for (var e : top.entrySet()) {
                String name = (String) e.getKey();
                if (name.equals(METADATA_KEY)) {
                    if (!(e.getValue() instanceof Map<?, ?> md))
                        throw new DataFormatException(file, 8, METADATA_KEY + " is not a JSON object");
                    for (var m : md.entrySet()) {
                        if (!(m.getValue() instanceof String v))
                            throw new DataFormatException(file, 8, "metadata " + Json.quote((String) m.getKey()) + " is not a string");
                        metadata.put((String) m.getKey(), v);
                    }
                    continue;
                }
                specs.add(spec(file, name, e.getValue(), dataLen));
            }
            Map<String, Integer> crcs = checksums(file, metadata, specs);
            List<Spec> byBegin = new ArrayList<>(specs);
            byBegin.sort(Comparator.comparingLong(Spec::begin).thenComparingLong(Spec::end));
            Spec prev = null;
            for (Spec s : byBegin) {
                if (s.begin() == s.end()) continue; // empty tensors take no bytes and cannot overlap
                if (prev != null && s.begin() < prev.end())
                    throw new DataFormatException(file, dataStart + s.begin(), "data of " + Json.quote(s.name()) + " [" + s.begin() + ", " + s.end()
                            + ") overlaps data of " + Json.quote(prev.name()) + " [" + prev.begin() + ", " + prev.end() + ")");
                prev = s;
            }
            // bytes past the last entry's data belong to no entry: something was appended to the file (or a copy went
            // wrong); the format's reference reader refuses them too (its data must end where the file does)
            long last = specs.stream().mapToLong(Spec::end).max().orElse(0);
            if (last < dataLen)
                throw new DataFormatException(file, dataStart + last, (dataLen - last) + " bytes after the last entry's data, which ends at offset "
                        + (dataStart + last) + " of " + size + " (appended to the file?)");

            Map<String, Tensor> tensors = new LinkedHashMap<>();
            Map<String, long[]> longs = new LinkedHashMap<>();
            ByteBuffer buf = ByteBuffer.allocate(CHUNK).order(ByteOrder.LITTLE_ENDIAN);
            MemorySegment bufSeg = MemorySegment.ofBuffer(buf);
            CRC32C crc = new CRC32C();
            boolean ok = false;
            try {
                for (Spec s : specs) {
                    long pos = dataStart + s.begin();
                    crc.reset();
                    long[] dims = new long[s.shape().length];
                    for (int k = 0; k < dims.length; k++) dims[k] = s.shape()[k];
                    crc.update(specText(s.dtype(), dims));
                    switch (s.dtype()) {
                        case "I64" -> {
                            if (s.numel() > Integer.MAX_VALUE - 8)
                                throw new DataFormatException(file, pos, "int64 entry " + Json.quote(s.name()) + " is too large for a long[]");
                            long[] v = new long[(int) s.numel()];
                            int per = CHUNK / 8;
                            for (int done = 0; done < v.length; ) {
                                int k = Math.min(per, v.length - done);
                                buf.clear().limit(k * 8);
                                readFully(ch, buf, pos + done * 8L, file);
                                crc.update(buf.array(), 0, buf.limit());
                                MemorySegment.copy(bufSeg, I64_LE, 0, v, done, k);
                                done += k;
                            }
                            longs.put(s.name(), v);
                        }
                        case "F32", "F64" -> {
                            DType dt = s.dtype().equals("F32") ? DType.F32 : DType.F64;
                            Tensor t = Tensor.empty(dt, s.shape());
                            tensors.put(s.name(), t);
                            MemorySegment dst = t.data();
                            long per = CHUNK / dt.bytes;
                            for (long done = 0; done < s.numel(); ) {
                                long k = Math.min(per, s.numel() - done);
                                buf.clear().limit((int) (k * dt.bytes));
                                readFully(ch, buf, pos + done * dt.bytes, file);
                                crc.update(buf.array(), 0, buf.limit());
                                if (dt == DType.F32)
                                    MemorySegment.copy(bufSeg, F32_LE, 0, dst, ValueLayout.JAVA_FLOAT_UNALIGNED, done * 4, k);
                                else
                                    MemorySegment.copy(bufSeg, F64_LE, 0, dst, ValueLayout.JAVA_DOUBLE_UNALIGNED, done * 8, k);
                                done += k;
                            }
                        }
                        default -> throw new IllegalStateException(s.dtype());
                    }
                    Integer want = crcs.get(s.name());
                    if (want != null && want != (int) crc.getValue())
                        throw new DataFormatException(file, pos, "the data of " + Json.quote(s.name()) + " fail their CRC-32C check (stored "
                                + hex(want) + ", computed " + hex((int) crc.getValue()) + "): the file is corrupt" + EDITED);
                }
                ok = true;
            } finally {
                if (!ok) tensors.values().forEach(Tensor::close);
            }
            return new Contents(tensors, longs, metadata);
        }
    }

    private static final String EDITED = " (or was edited by a tool that kept the old " + CRC_PREFIX + " metadata: drop those keys to read it unchecked)";

    /**
     * The stored checksum of each entry, by name, after checking the metadata's own; empty for a file without checksums.
     * Removes the checksum keys from metadata.
     */
    private static Map<String, Integer> checksums(Path file, Map<String, String> metadata, List<Spec> specs) {
        Map<String, Integer> crcs = new LinkedHashMap<>();
        for (var it = metadata.entrySet().iterator(); it.hasNext(); ) {
            var m = it.next();
            if (!m.getKey().startsWith(CRC_PREFIX)) continue;
            String v = m.getValue();
            if (v.length() != 8 || !v.chars().allMatch(c -> (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
                throw new DataFormatException(file, 8, "metadata " + Json.quote(m.getKey()) + " is " + Json.quote(v) + ", not a checksum of 8 hex digits");
            crcs.put(m.getKey().substring(CRC_PREFIX.length()), Integer.parseUnsignedInt(v, 16));
            it.remove();
        }
        if (crcs.isEmpty()) return crcs;
        Integer md = crcs.remove(METADATA_KEY);
        if (md == null) throw new DataFormatException(file, 8, "the header has entry checksums but none of its metadata (" + CRC_METADATA + "): it is corrupt");
        if (md != metadataCrc(metadata))
            throw new DataFormatException(file, 8, "the metadata fail their CRC-32C check (stored " + hex(md) + ", computed "
                    + hex(metadataCrc(metadata)) + "): the file is corrupt" + EDITED);
        java.util.Set<String> names = new java.util.HashSet<>();
        for (Spec s : specs) {
            names.add(s.name());
            if (!crcs.containsKey(s.name()))
                throw new DataFormatException(file, 8, "entry " + Json.quote(s.name()) + " has no checksum where the others have: the header is corrupt");
        }
        for (String n : crcs.keySet())
            if (!names.contains(n))
                throw new DataFormatException(file, 8, "metadata " + Json.quote(CRC_PREFIX + n) + " is the checksum of an entry the file does not hold: the header is corrupt");
        return crcs;
    }

    private static Spec spec(Path file, String name, Object v, long dataLen) {
        String what = "entry " + Json.quote(name);
        if (!(v instanceof Map<?, ?> m)) throw new DataFormatException(file, 8, what + " is not a JSON object");
        if (!(m.get("dtype") instanceof String dtype)) throw new DataFormatException(file, 8, what + " has no string \"dtype\"");
        int eb = switch (dtype) {
            case "F32" -> 4;
            case "F64", "I64" -> 8;
            default -> throw new DataFormatException(file, 8, what + " has dtype " + dtype + "; fst4j reads F32, F64 and I64");
        };
        if (!(m.get("shape") instanceof List<?> sl)) throw new DataFormatException(file, 8, what + " has no \"shape\" array");
        int[] shape = new int[sl.size()];
        long numel = 1;
        for (int k = 0; k < shape.length; k++) {
            if (!(sl.get(k) instanceof Long d) || d < 0 || d > Integer.MAX_VALUE)
                throw new DataFormatException(file, 8, what + " has an invalid shape " + sl);
            shape[k] = (int) (long) d;
            try { numel = Math.multiplyExact(numel, d); } catch (ArithmeticException ex) {
                throw new DataFormatException(file, 8, what + " has a shape too large: " + sl);
            }
        }
        if (!(m.get("data_offsets") instanceof List<?> ol) || ol.size() != 2
                || !(ol.get(0) instanceof Long b) || !(ol.get(1) instanceof Long e))
            throw new DataFormatException(file, 8, what + " has no \"data_offsets\" [begin, end] of integers");
        if (b < 0 || e < b) throw new DataFormatException(file, 8, what + " has invalid data_offsets [" + b + ", " + e + "]");
        if (e > dataLen)
            throw new DataFormatException(file, 8, what + " has data_offsets [" + b + ", " + e + "] beyond the " + dataLen
                    + " data bytes in the file (truncated?)");
        long need;
        try { need = Math.multiplyExact(numel, (long) eb); } catch (ArithmeticException ex) {
            throw new DataFormatException(file, 8, what + " has a shape too large: " + sl);
        }
        if (e - b != need)
            throw new DataFormatException(file, 8, what + " has " + (e - b) + " data bytes but " + dtype + " " + sl + " needs " + need);
        return new Spec(name, dtype, shape, numel, b, e);
    }

    private static void readFully(FileChannel ch, ByteBuffer b, long pos, Path file) throws IOException {
        long start = pos;
        while (b.hasRemaining()) {
            int r = ch.read(b, pos);
            if (r < 0) throw new DataFormatException(file, pos, "unexpected end of file (reading from offset " + start + ")");
            pos += r;
        }
    }
}
