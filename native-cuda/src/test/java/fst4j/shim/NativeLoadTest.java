package fst4j.shim;

import org.junit.jupiter.api.Test;

import java.nio.file.Path;
import java.util.List;

import static org.junit.jupiter.api.Assertions.*;

class NativeLoadTest {
    /** Run in a child JVM: prints what a user of a broken install would see. */
    public static void main(String[] args) {
        try {
            Native.version();
            System.out.println("LOADED");
        } catch (NativeLibraryException e) {
            System.out.println("ERROR " + e.getMessage());
        }
        // allocation does not need the shim
        java.lang.foreign.MemorySegment p = Native.malloc(100);
        Native.free(p);
        System.out.println("MALLOC OK");
    }

    private static String runChild(String libPath) throws Exception {
        String java = Path.of(System.getProperty("java.home"), "bin", "java").toString();
        Process p = new ProcessBuilder(List.of(java, "--enable-native-access=ALL-UNNAMED", "-Dfst4j.native.lib=" + libPath,
                "-cp", System.getProperty("java.class.path"), NativeLoadTest.class.getName()))
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes());
        assertEquals(0, p.waitFor(), out);
        return out;
    }

    @Test
    void missingLibraryGivesAnExceptionNamingThePath() throws Exception {
        String out = runChild("/nonexistent/libfst4j.so");
        assertTrue(out.contains("ERROR cannot load the fst4j native library from /nonexistent/libfst4j.so: file not found"), out);
        assertTrue(out.contains("MALLOC OK"), out);
    }

    @Test
    void corruptLibraryGivesAnExceptionWithTheReason(@org.junit.jupiter.api.io.TempDir Path dir) throws Exception {
        Path bad = dir.resolve("libfst4j.so");
        java.nio.file.Files.writeString(bad, "not an ELF file");
        String out = runChild(bad.toString());
        assertTrue(out.contains("ERROR cannot load the fst4j native library from " + bad), out);
    }

    @Test
    void loadedShimReportsItsKernelFamily() {
        assertEquals(1, Native.version());
        assertTrue(List.of("avx512", "avx2", "generic").contains(Native.isa()), Native.isa());
        assertTrue(Native.maxThreads() >= 1);
    }
}
