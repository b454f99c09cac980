package fst4j.shim;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.nio.file.Files;
import java.nio.file.Path;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The warpgroup GEMM benchmark ({@link CudaWgGemmBench}) in its smoke mode (one 128 x 128 x 64 product, both tiles, the 128-row one also through cp.async), so that it cannot
 * rot: on the host emulator in every build with nvcc (CI), and on a device. The line must be there, with both of our
 * products within bf16-product rounding of cuBLAS's (the emulator's GemmEx reference there).
 */
class CudaWgGemmBenchTest {
    @Test
    void smokeModeComparesBothProductsWithCublas(@TempDir Path dir) throws Exception {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA device: " + Cuda.status());
        Path out = dir.resolve("wgg.txt");
        CudaWgGemmBench.main(new String[]{ "--smoke", out.toString() });
        String text = Files.readString(out);
        System.out.println(text);
        assumeTrue(!text.contains("no sm_90a code"), "this device build has no sm_90a code");
        for (String tile : new String[]{ "64 ", "128 ", "128a " }) {
            String line = text.lines().filter(l -> l.startsWith("WGG 128 x 128 x 64 tile " + tile)).findFirst().orElseThrow(() -> new AssertionError(text));
            String[] diffs = line.substring(line.indexOf("max diff vs cuBLAS") + "max diff vs cuBLAS".length()).trim().split(" / ");
            for (String d : diffs) assertTrue(Double.parseDouble(d) < 1e-5, "difference against cuBLAS " + d + ": " + line);
        }
        assertTrue(text.lines().anyMatch(l -> l.startsWith("WGG conv  64 -> 128 @6x6 batch 1") && l.contains("tile 64") && l.contains("tile 128:") && l.contains("tile 128a:")), text);
    }
}
