package fst4j.nn.io;

import fst4j.tensor.DType;
import fst4j.tensor.Scope;
import fst4j.tensor.Tensor;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

class SafeTensorsTest {
    @TempDir Path dir;

    @Test
    void roundTripAllTypesAndLayouts() throws IOException {
        Path f = dir.resolve("ckpt.safetensors");
        try (Scope _ = Scope.open()) {
            Tensor a = Tensor.of(new float[]{1, 2, 3, 4, 5, 6}, 2, 3);
            Tensor at = a.t();                       // non-contiguous: written as its logical [3,2] values
            Tensor d = Tensor.of(new double[]{Math.PI, -0.0, Double.MIN_VALUE}, 3);
            Tensor scalar = Tensor.scalar(7.5f);
            Tensor empty = Tensor.zeros(0, 4);
            Map<String, Tensor> ts = new LinkedHashMap<>();
            ts.put("layer.0.weight", a);
            ts.put("layer.0.weight_t", at);
            ts.put("double", d);
            ts.put("scalar", scalar);
            ts.put("empty", empty);
            long[] rng = {Long.MIN_VALUE, -1, 0, 1, Long.MAX_VALUE, 0x0123456789abcdefL};
            SafeTensors.write(f, ts, Map.of("rng", rng, "step", new long[]{12345}),
                    Map.of("method", "fst \"2:4\"\n\u00e9", "epoch", "3"));
            try (SafeTensors.Contents c = SafeTensors.read(f)) {
                assertArrayEquals(new float[]{1, 2, 3, 4, 5, 6}, c.tensor("layer.0.weight").toFloatArray());
                assertArrayEquals(new int[]{2, 3}, c.tensor("layer.0.weight").shape());
                assertArrayEquals(new float[]{1, 4, 2, 5, 3, 6}, c.tensor("layer.0.weight_t").toFloatArray());
                assertArrayEquals(new int[]{3, 2}, c.tensor("layer.0.weight_t").shape());
                assertEquals(DType.F64, c.tensor("double").dtype());
                assertArrayEquals(new double[]{Math.PI, -0.0, Double.MIN_VALUE}, c.tensor("double").toDoubleArray());
                assertEquals(0, c.tensor("scalar").dim());
                assertEquals(7.5, c.tensor("scalar").item());
                assertArrayEquals(new int[]{0, 4}, c.tensor("empty").shape());
                assertArrayEquals(rng, c.int64("rng"));
                assertArrayEquals(new long[]{12345}, c.int64("step"));
                assertEquals(Map.of("method", "fst \"2:4\"\n\u00e9", "epoch", "3"), c.metadata());
                assertThrows(IllegalArgumentException.class, () -> c.tensor("nope"));
            }
        }
        // the header is padded so that the data starts 8-aligned
        long n = ByteBuffer.wrap(Files.readAllBytes(f), 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
        assertEquals(0, (8 + n) % 8);
        // no temporary files are left behind
        try (var l = Files.list(dir)) { assertEquals(1, l.count()); }
    }

    @Test
    void overwriteReplacesAtomically() throws IOException {
        Path f = dir.resolve("x.safetensors");
        try (Scope _ = Scope.open()) {
            SafeTensors.write(f, Map.of("a", Tensor.of(new float[]{1}, 1)));
            SafeTensors.write(f, Map.of("b", Tensor.of(new float[]{2, 3}, 2)));
            try (var c = SafeTensors.read(f)) {
                assertEquals(java.util.Set.of("b"), c.tensors().keySet());
            }
        }
        try (var l = Files.list(dir)) { assertEquals(1, l.count()); }
    }

    /** CRC-32C of the bytes of each part in turn, as 8 lowercase hex digits. */
    private static String crc(byte[]... parts) {
        java.util.zip.CRC32C c = new java.util.zip.CRC32C();
        for (byte[] b : parts) c.update(b);
        return String.format("%08x", c.getValue());
    }

    private static byte[] ascii(String s) { return s.getBytes(StandardCharsets.US_ASCII); }

    /** Exact bytes of a tiny file: the header JSON with its checksums, and the little-endian data. */
    @Test
    void goldenByteLayout() throws IOException {
        Path f = dir.resolve("golden.safetensors");
        try (Scope _ = Scope.open()) {
            SafeTensors.write(f, Map.of("w", Tensor.of(new float[]{1.0f, -2.0f}, 2)), Map.of("step", new long[]{7}),
                    Map.of("format", "pt"));
        }
        byte[] b = Files.readAllBytes(f);
        byte[] step = {7, 0, 0, 0, 0, 0, 0, 0}, w = {/* 1.0f */ 0, 0, (byte) 0x80, 0x3f, /* -2.0f */ 0, 0, 0, (byte) 0xc0};
        // the metadata's checksum: each key and value as a 4-byte little-endian length and its UTF-8 bytes, by key
        byte[] md = {6, 0, 0, 0, 'f', 'o', 'r', 'm', 'a', 't', 2, 0, 0, 0, 'p', 't'};
        // an entry's: its dtype and shape as text, then its data
        String json = "{\"__metadata__\":{\"crc32c:__metadata__\":\"" + crc(md) + "\",\"crc32c:step\":\"" + crc(ascii("I64[1]"), step)
                + "\",\"crc32c:w\":\"" + crc(ascii("F32[2]"), w) + "\",\"format\":\"pt\"},"
                + "\"step\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
        assertEquals(222, json.length());
        assertEquals("e3069283", crc(new byte[]{'1', '2', '3', '4', '5', '6', '7', '8', '9'}));   // the CRC-32C check value
        String header = json + "  "; // padded with spaces to 224, a multiple of 8
        byte[] expected = new byte[8 + 224 + 16];
        expected[0] = (byte) 224;
        System.arraycopy(header.getBytes(StandardCharsets.US_ASCII), 0, expected, 8, 224);
        System.arraycopy(step, 0, expected, 232, 8);
        System.arraycopy(w, 0, expected, 240, 8);
        assertEquals(header, new String(b, 8, Math.min(224, b.length - 8), StandardCharsets.US_ASCII));
        assertArrayEquals(expected, b);
        try (var c = SafeTensors.read(f)) {
            assertEquals(Map.of("format", "pt"), c.metadata());   // the checksums are not metadata to the caller
        }
        // the reader accepts hand-built bytes without checksums (another writer's) and reads them unchecked
        String plain = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"step\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}  ";
        ByteBuffer bb = ByteBuffer.allocate(8 + 144 + 16).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(144).put(plain.getBytes(StandardCharsets.US_ASCII)).put(step).put(w);
        Path g = dir.resolve("handmade.safetensors");
        Files.write(g, bb.array());
        try (var c = SafeTensors.read(g)) {
            assertArrayEquals(new float[]{1, -2}, c.tensor("w").toFloatArray());
            assertArrayEquals(new long[]{7}, c.int64("step"));
            assertEquals(Map.of("format", "pt"), c.metadata());
        }
    }

    /** A file as another writer would produce it: unpadded header, whitespace, keys in any order, unknown keys. */
    @Test
    void readsForeignLayout() throws IOException {
        String json = "{ \"b\" : {\"data_offsets\":[8,16],\"dtype\":\"F64\",\"shape\":[1]} ,"
                + " \"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":null}}";
        ByteBuffer bb = ByteBuffer.allocate(8 + json.length() + 16).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(json.length()).put(json.getBytes(StandardCharsets.US_ASCII)).putFloat(0.5f).putFloat(-1f).putDouble(3.25);
        Path f = dir.resolve("foreign.safetensors");
        Files.write(f, bb.array());
        try (Scope _ = Scope.open(); var c = SafeTensors.read(f)) {
            assertArrayEquals(new float[]{0.5f, -1f}, c.tensor("a").toFloatArray());
            assertArrayEquals(new double[]{3.25}, c.tensor("b").toDoubleArray());
            assertTrue(c.metadata().isEmpty());
        }
    }

    // ------------------------------------------------------------------ corruption

    private Path file(String name, String json, int dataBytes) throws IOException {
        byte[] j = json.getBytes(StandardCharsets.UTF_8);
        ByteBuffer bb = ByteBuffer.allocate(8 + j.length + dataBytes).order(ByteOrder.LITTLE_ENDIAN);
        bb.putLong(j.length).put(j);
        Path f = dir.resolve(name);
        Files.write(f, bb.array());
        return f;
    }

    private DataFormatException bad(Path f, String... fragments) {
        DataFormatException e = assertThrows(DataFormatException.class, () -> SafeTensors.read(f));
        assertEquals(f, e.file());
        assertTrue(e.getMessage().contains(f.toString()), e.getMessage());
        for (String fr : fragments) assertTrue(e.getMessage().contains(fr), "'" + fr + "' not in: " + e.getMessage());
        return e;
    }

    @Test
    void truncatedFile() throws IOException {
        Path good = dir.resolve("good.safetensors");
        try (Scope _ = Scope.open()) {
            SafeTensors.write(good, Map.of("w", Tensor.of(new float[]{1, 2, 3, 4}, 4)));
        }
        byte[] all = Files.readAllBytes(good);
        Path t = dir.resolve("truncated.safetensors");
        Files.write(t, Arrays.copyOf(all, all.length - 3));
        bad(t, "\"w\"", "beyond", "truncated");
        Files.write(t, Arrays.copyOf(all, 5));
        assertEquals(0, bad(t, "too short").offset());
        Files.write(t, Arrays.copyOf(all, 40)); // header cut in the middle
        assertEquals(0, bad(t, "header length").offset());
        // bytes appended after the data belong to no entry: refused, as the format's reference reader does
        Path longer = dir.resolve("appended.safetensors");
        Files.write(longer, Arrays.copyOf(all, all.length + 3));
        assertEquals(all.length, bad(longer, "3 bytes after the last entry's data, which ends at offset " + all.length + " of " + (all.length + 3)).offset());
    }

    @Test
    void badHeaderLength() throws IOException {
        Path f = dir.resolve("len.safetensors");
        ByteBuffer bb = ByteBuffer.allocate(16).order(ByteOrder.LITTLE_ENDIAN).putLong(-1L).putLong(0);
        Files.write(f, bb.array());
        bad(f, "header length 18446744073709551615");
        bb.clear();
        bb.putLong(9).putLong(0);
        Files.write(f, bb.array());
        bad(f, "header length 9", "16 bytes");
    }

    @Test
    void badJson() throws IOException {
        bad(file("a.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]", 4), "not valid JSON", "end of JSON");
        DataFormatException e = bad(file("b.safetensors", "{\"w\" {}}", 0), "not valid JSON", "expected ':'");
        assertEquals(8 + 5, e.offset());
        bad(file("c.safetensors", "[1,2]", 0), "not a JSON object");
        bad(file("d.safetensors", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}} x", 4), "trailing");
        bad(file("e.safetensors", "{\"a\":1,\"a\":2}", 0), "duplicate key");
        Path f = dir.resolve("utf.safetensors");
        Files.write(f, new byte[]{4, 0, 0, 0, 0, 0, 0, 0, '{', (byte) 0xff, '}', ' '});
        bad(f, "UTF-8");
    }

    @Test
    void badEntries() throws IOException {
        bad(file("o.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 12), "overlaps", "\"a\"", "\"b\"");
        bad(file("s.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8), "needs 12");
        bad(file("r.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8), "invalid data_offsets");
        bad(file("t.safetensors", "{\"a\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", 4), "BF16");
        bad(file("n.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[-1],\"data_offsets\":[0,4]}}", 4), "invalid shape");
        bad(file("m.safetensors", "{\"__metadata__\":{\"k\":1}}", 0), "not a string");
        bad(file("x.safetensors", "{\"a\":{\"dtype\":\"F32\",\"shape\":[1]}}", 4), "data_offsets");
    }

    /**
     * Every single-bit flip anywhere in a small file (header length, header, padding, data) is refused by a
     * DataFormatException or reads back exactly what was written; a flip in the data bytes is always refused (the
     * checksums), as is one in a metadata value, which no structural check could see.
     */
    @Test
    void everySingleBitFlipIsRefusedOrHarmless() throws IOException {
        Path f = dir.resolve("flip.safetensors");
        float[] wv = {0.5f, -1.25f, 3f, Float.MIN_VALUE, -0f, 7e-3f};
        double[] dv = {Math.PI, -1e300};
        long[] lv = {42, -7};
        try (Scope _ = Scope.open()) {
            // with an empty [0, 4]: a flipped digit of its 4 changes no data byte, only its checksum's text sees it
            SafeTensors.write(f, Map.of("w", Tensor.of(wv, 2, 3), "d", Tensor.of(dv, 2), "e", Tensor.zeros(fst4j.tensor.DType.F32, 0, 4)), Map.of("n", lv),
                    Map.of("lr", "0.1", "method", "fst3_ir"));
        }
        byte[] ok = Files.readAllBytes(f);
        long headerEnd = 8 + ByteBuffer.wrap(ok).order(ByteOrder.LITTLE_ENDIAN).getLong();
        String header = new String(ok, 8, (int) headerEnd - 8, StandardCharsets.US_ASCII);
        int lrValue = 8 + header.indexOf("\"lr\":\"0.1\"") + 6;   // the '0' of "0.1"
        Path g = dir.resolve("flipped.safetensors");
        int refused = 0, harmless = 0;
        for (int i = 0; i < ok.length; i++)
            for (int bit = 0; bit < 8; bit++) {
                byte[] bad = ok.clone();
                bad[i] ^= (byte) (1 << bit);
                Files.write(g, bad);
                try (Scope _ = Scope.open(); var c = SafeTensors.read(g)) {
                    assertTrue(i < headerEnd && i != lrValue, "a flip of bit " + bit + " at byte " + i + " was read without an error");
                    assertArrayEquals(wv, c.tensor("w").toFloatArray(), "byte " + i);
                    assertArrayEquals(dv, c.tensor("d").toDoubleArray(), "byte " + i);
                    assertArrayEquals(lv, c.int64("n"), "byte " + i);
                    assertEquals(Map.of("lr", "0.1", "method", "fst3_ir"), c.metadata(), "byte " + i);
                    assertEquals(java.util.Set.of("w", "d", "e"), c.tensors().keySet());
                    assertArrayEquals(new int[]{0, 4}, c.tensor("e").shape(), "byte " + i);
                    harmless++;
                } catch (DataFormatException e) {
                    assertEquals(g, e.file());
                    refused++;
                }
            }
        assertEquals(8 * ok.length, refused + harmless);
        assertTrue(harmless <= 8 * (headerEnd - 8) / 10, harmless + " of " + 8 * ok.length + " flips were harmless");
    }

    @Test
    void checksumErrorsNameTheEntry() throws IOException {
        Path f = dir.resolve("c.safetensors");
        try (Scope _ = Scope.open()) {
            SafeTensors.write(f, Map.of("conv.weight", Tensor.of(new float[]{1, 2, 3, 4}, 4)), Map.of(), Map.of("k", "v"));
        }
        byte[] ok = Files.readAllBytes(f);
        byte[] bad = ok.clone();
        bad[bad.length - 2] ^= 1;   // a data byte of the only entry
        Files.write(f, bad);
        DataFormatException e = bad(f, "\"conv.weight\"", "CRC-32C", "corrupt", "drop");
        assertEquals(ok.length - 16, e.offset());
        // a checksum that is not 8 hex digits, one for an entry the file lacks, an entry without one, none for the metadata
        String data = "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}";
        bad(file("h.safetensors", "{\"__metadata__\":{\"crc32c:a\":\"XYZ\"}," + data, 4), "not a checksum of 8 hex digits");
        bad(file("u.safetensors", "{\"__metadata__\":{\"crc32c:a\":\"2144df1c\",\"crc32c:b\":\"00000000\"},"
                + data, 4), "none of its metadata");
        String mdCrc = crc(new byte[0]);   // no other metadata
        bad(file("v.safetensors", "{\"__metadata__\":{\"crc32c:__metadata__\":\"" + mdCrc + "\",\"crc32c:a\":\"2144df1c\",\"crc32c:b\":\"00000000\"},"
                + data, 4), "\"crc32c:b\"", "does not hold");
        bad(file("x.safetensors", "{\"__metadata__\":{\"crc32c:__metadata__\":\"" + mdCrc + "\",\"crc32c:b\":\"00000000\"},"
                + "\"b\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]}," + data, 4), "\"a\"", "no checksum");
        // and the right ones pass (four zero bytes alone have CRC-32C 48674bc7)
        assertEquals("48674bc7", crc(new byte[4]));
        try (var c = SafeTensors.read(file("y.safetensors", "{\"__metadata__\":{\"crc32c:__metadata__\":\"" + mdCrc
                + "\",\"crc32c:a\":\"" + crc(ascii("F32[1]"), new byte[4]) + "\"}," + data, 4))) {
            assertArrayEquals(new float[]{0}, c.tensor("a").toFloatArray());
            assertTrue(c.metadata().isEmpty());
        }
    }

    /** An entry over several 1 MiB read and write chunks, and names and metadata beyond ASCII, checksummed and read back. */
    @Test
    void largeEntriesAndUnicodeNamesRoundTripWithChecksums() throws IOException {
        Path f = dir.resolve("big.safetensors");
        int n = (1 << 18) + 77;   // ~1 MiB + 308 bytes of float32: two chunks each way
        float[] v = new float[n];
        for (int i = 0; i < n; i++) v[i] = (float) Math.sin(i);
        try (Scope _ = Scope.open()) {
            SafeTensors.write(f, Map.of("poids.\u00e9t\u00e9", Tensor.of(v, n), "\ud83d\ude00", Tensor.of(new double[]{2.5}, 1)), Map.of(),
                    Map.of("r\u00e9sum\u00e9", "\u00fcber \ud83d\ude00", "\ue000", "private use", "\ud83d\ude01", "astral key"));
            try (var c = SafeTensors.read(f)) {
                assertArrayEquals(v, c.tensor("poids.\u00e9t\u00e9").toFloatArray());
                assertArrayEquals(new double[]{2.5}, c.tensor("\ud83d\ude00").toDoubleArray());
                assertEquals(Map.of("r\u00e9sum\u00e9", "\u00fcber \ud83d\ude00", "\ue000", "private use", "\ud83d\ude01", "astral key"), c.metadata());
            }
        }
        byte[] ok = Files.readAllBytes(f);
        byte[] bad = ok.clone();
        bad[bad.length - 4 * 100] ^= 0x40;   // in the float32 entry's second chunk (it is written last: 8-byte types first)
        Files.write(f, bad);
        bad(f, "\"poids.\u00e9t\u00e9\"", "CRC-32C");
    }

    @Test
    void writerRefusesUnpairedSurrogates() {
        try (Scope _ = Scope.open()) {
            Path f = dir.resolve("s.safetensors");
            Tensor t = Tensor.of(new float[]{1}, 1);
            // UTF-8 cannot carry them: they were written as '?', so names were silently renamed
            assertThrows(IllegalArgumentException.class, () -> SafeTensors.write(f, Map.of("w\ud800", t)));
            assertThrows(IllegalArgumentException.class, () -> SafeTensors.write(f, Map.of("w", t), Map.of(), Map.of("x\udc00", "1")));
            assertThrows(IllegalArgumentException.class, () -> SafeTensors.write(f, Map.of("w", t), Map.of(), Map.of("x", "\ud800")));
            assertFalse(Files.exists(f));
        }
    }

    @Test
    void writerRefusesChecksumKeysInMetadata() {
        try (Scope _ = Scope.open()) {
            Path f = dir.resolve("k.safetensors");
            IllegalArgumentException e = assertThrows(IllegalArgumentException.class,
                    () -> SafeTensors.write(f, Map.of("a", Tensor.of(new float[]{1}, 1)), Map.of(), Map.of("crc32c:a", "00000000")));
            assertTrue(e.getMessage().contains("checksums"), e.getMessage());
            assertFalse(Files.exists(f));
        }
    }

    @Test
    void writerRejectsBadNames() {
        try (Scope _ = Scope.open()) {
            Tensor t = Tensor.of(new float[]{1}, 1);
            Path f = dir.resolve("n.safetensors");
            assertThrows(IllegalArgumentException.class, () -> SafeTensors.write(f, Map.of("__metadata__", t)));
            assertThrows(IllegalArgumentException.class, () -> SafeTensors.write(f, Map.of("a", t), Map.of("a", new long[1]), null));
            assertFalse(Files.exists(f));
        }
    }
}
