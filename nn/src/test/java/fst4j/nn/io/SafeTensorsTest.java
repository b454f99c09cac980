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

    /** Exact bytes of a tiny file: the header JSON and the little-endian data. */
    @Test
    void goldenByteLayout() throws IOException {
        Path f = dir.resolve("golden.safetensors");
        try (Scope _ = Scope.open()) {
            SafeTensors.write(f, Map.of("w", Tensor.of(new float[]{1.0f, -2.0f}, 2)), Map.of("step", new long[]{7}),
                    Map.of("format", "pt"));
        }
        byte[] b = Files.readAllBytes(f);
        String json = "{\"__metadata__\":{\"format\":\"pt\"},"
                + "\"step\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]},"
                + "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}";
        assertEquals(142, json.length());
        String header = json + "  "; // padded with spaces to 144, a multiple of 8
        byte[] expected = new byte[8 + 144 + 16];
        expected[0] = (byte) 144;
        System.arraycopy(header.getBytes(StandardCharsets.US_ASCII), 0, expected, 8, 144);
        byte[] data = {7, 0, 0, 0, 0, 0, 0, 0, /* 1.0f */ 0, 0, (byte) 0x80, 0x3f, /* -2.0f */ 0, 0, 0, (byte) 0xc0};
        System.arraycopy(data, 0, expected, 152, 16);
        assertEquals(header, new String(b, 8, Math.min(144, b.length - 8), StandardCharsets.US_ASCII));
        assertArrayEquals(expected, b);
        // and the reader accepts the hand-built bytes
        Path g = dir.resolve("handmade.safetensors");
        Files.write(g, expected);
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
