package fst4j.shim;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.regex.Pattern;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/** What a machine without a usable GPU reports (CI, developers' machines), and that each missing piece is named. */
class CudaStatusTest {
    /** The missing pieces a status may name when CUDA is unavailable. */
    static final Pattern MISSING = Pattern.compile("libfst4j_cuda\\.so not (built|found)|cannot load libfst4j_cuda\\.so"
            + "|libcudart\\.so\\.13 not found|no CUDA device|libcuda\\.so\\.1|CUDA driver initialisation failed|cannot load the fst4j kernels");

    /** Run in a child JVM: prints the status line and what requireDevice throws. */
    public static void main(String[] args) {
        System.out.println("STATUS " + Cuda.status());
        System.out.println("AVAILABLE " + Cuda.isAvailable());
        try {
            Cuda.requireDevice();
            System.out.println("REQUIRE ok");
        } catch (CudaUnavailableException e) {
            System.out.println("REQUIRE " + e.getMessage());
        }
    }

    private static String runChild(String... props) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        List<String> cmd = new ArrayList<>(List.of(java, "--enable-native-access=ALL-UNNAMED"));
        cmd.addAll(List.of(props));
        cmd.addAll(List.of("-cp", System.getProperty("java.class.path"), CudaStatusTest.class.getName()));
        ProcessBuilder pb = new ProcessBuilder(cmd).redirectErrorStream(true);   // -D overrides beat the FST4J_* env vars
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), out);
        return out;
    }

    @Test
    void statusIsOneLineAndNamesTheMissingPieceWhenUnavailable() {
        String status = Cuda.status();
        assertFalse(status.isBlank());
        assertFalse(status.contains("\n"), status);
        if (Cuda.isAvailable()) {
            assertTrue(status.startsWith("ok: "), status);
            Cuda.requireDevice();
        } else {
            assertTrue(MISSING.matcher(status).find(), "status names no missing piece: " + status);
            CudaUnavailableException e = assertThrows(CudaUnavailableException.class, Cuda::requireDevice);
            assertTrue(e.getMessage().contains(status), e.getMessage());
            // every entry point refuses with the same reason, before touching any pointer
            CudaUnavailableException m = assertThrows(CudaUnavailableException.class, () -> Cuda.malloc(64));
            assertTrue(m.getMessage().contains(status), m.getMessage());
            assertTrue(Cuda.blasStatus().startsWith("not loaded"), Cuda.blasStatus());
            assertTrue(Cuda.sparseLtStatus().startsWith("not loaded"), Cuda.sparseLtStatus());
        }
    }

    @Test
    void aMissingShimBuildIsReportedAsNotBuilt() {
        CudaUnavailableException e = assertThrows(CudaUnavailableException.class,
                () -> Native.locateCuda(null, "/native/no-such-folder/libfst4j_cuda.so"));
        assertEquals("libfst4j_cuda.so not built (nvcc missing at build time)", e.getMessage());
        e = assertThrows(CudaUnavailableException.class, () -> Native.locateCuda(null, "/native/no-such-folder/libfst4j_cuda_emu.so"));
        assertEquals("libfst4j_cuda_emu.so not built (nvcc missing at build time)", e.getMessage());
    }

    @Test
    void anOverriddenShimPathThatDoesNotExistIsNamed() throws Exception {
        String out = runChild("-Dfst4j.cuda.lib=/nonexistent/libfst4j_cuda.so");
        assertTrue(out.contains("STATUS libfst4j_cuda.so not found at /nonexistent/libfst4j_cuda.so"), out);
        assertTrue(out.contains("AVAILABLE false"), out);
        assertTrue(out.contains("REQUIRE CUDA is not available: libfst4j_cuda.so not found at /nonexistent/libfst4j_cuda.so"), out);
    }

    @Test
    void aRuntimeThatIsNotInTheSearchedFoldersIsNamedWithThem() throws Exception {
        assumeTrue(Native.class.getResource(Native.CUDA_RESOURCE) != null, "libfst4j_cuda.so not built here (no nvcc)");
        String out = runChild("-Dfst4j.cuda.libDir=/nonexistent/cuda-lib", "-Dfst4j.cuda.searchDefaults=false");
        assertTrue(out.contains("STATUS libcudart.so.13 not found in FST4J_CUDA_LIB_DIR (/nonexistent/cuda-lib) only (default search off)"), out);
        assertTrue(out.contains("AVAILABLE false"), out);
    }

    /**
     * A length that is not a multiple of the segment is refused as an invalid argument, before the null pointers are looked
     * at (a null-pointer refusal would be an IllegalArgumentException too, so the message says which rule caught it). Runs
     * on a device and in the cuda-emulator execution (native-cuda/pom.xml), where the same argument checks are compiled.
     */
    @Test
    void theShimReportsBadArgumentsAsInvalidNotAsCrashes() {
        assumeTrue(Cuda.isAvailable(), () -> "no usable CUDA device: " + Cuda.status());
        IllegalArgumentException e = assertThrows(IllegalArgumentException.class, () -> Native.cudaShiftGather(java.lang.foreign.MemorySegment.NULL,
                java.lang.foreign.MemorySegment.NULL, 1, 10, 3, 1, 0f, false));   // len not a multiple of seg
        assertTrue(e.getMessage().contains("fst_cuda_shift_gather") && e.getMessage().contains("invalid argument") && e.getMessage().contains("len % seg != 0"),
                e.getMessage());
        IllegalArgumentException shift = assertThrows(IllegalArgumentException.class, () -> Native.cudaShiftGather(java.lang.foreign.MemorySegment.NULL,
                java.lang.foreign.MemorySegment.NULL, 1, 9, 3, 2, 0f, false));   // a shift of 2
        assertTrue(shift.getMessage().contains("invalid argument") && shift.getMessage().contains("shift != 1"), shift.getMessage());
        IllegalArgumentException nul = assertThrows(IllegalArgumentException.class, () -> Native.cudaShiftGather(java.lang.foreign.MemorySegment.NULL,
                java.lang.foreign.MemorySegment.NULL, 1, 9, 3, 1, 0f, false));   // legal sizes: the null pointers are named
        assertTrue(nul.getMessage().contains("null pointer"), nul.getMessage());
    }
}
