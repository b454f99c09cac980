package fst4j.shim;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The convolution benchmark ({@link CudaConvBench}) in its smoke mode, so that it cannot rot: on the host emulator in
 * every build with nvcc, and on a device where there is one. Every variant must pass its check against float64, and the
 * table must hold a row per layer and equation (Eq. 2 for the stride-1 layers whose Cout is a multiple of 32).
 */
class CudaConvBenchTest {
    @Test
    void smokeModeRunsEveryVariantAndPassesItsChecks(@TempDir Path dir) throws Exception {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA device: " + Cuda.status());
        Path out = dir.resolve("conv.txt");
        ByteArrayOutputStream buf = new ByteArrayOutputStream();
        boolean ok;
        try (PrintStream ps = new PrintStream(buf, true, StandardCharsets.UTF_8)) {
            ok = CudaConvBench.run(CudaConvBench.Config.smoke(), out, ps);
        }
        String text = Files.readString(out);
        System.out.println(text);
        assertTrue(ok, text);
        assertFalse(text.contains("FAIL"), text);
        long timed = text.lines().filter(l -> l.startsWith("time ")).count(), table = text.lines().filter(l -> l.matches("CONV \\S+-s .*")).count();
        // stem-s: Eq. 1 only (stride 2); conv-s and wide-s: Eq. 1 and 2; five variants each; every layer: Eq. 3 and its
        // kept half, two variants each
        assertEquals(5 * 5 + 3 * 4, timed, text);
        assertEquals(5, table, text);
        assertEquals(3, text.lines().filter(l -> l.matches("CONV3 \\S+-s .*")).count(), text);
        for (String l : text.lines().filter(x -> x.startsWith("time ")).toList()) {
            double ms = Double.parseDouble(l.replaceAll(".*median\\s+([0-9.]+) ms.*", "$1"));
            assertTrue(ms >= 0 && Double.isFinite(ms), l);
        }
    }
}
