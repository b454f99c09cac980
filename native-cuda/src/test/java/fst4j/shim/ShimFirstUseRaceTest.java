package fst4j.shim;

import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;

import static org.junit.jupiter.api.Assertions.*;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

/**
 * The shim's state decided on first use (the 2:4 kernel family in sparse.c; the CUDA shim's switches FST4J_CUDA_IM2COL_VEC,
 * _IGEMM_TILE, _WG_ASYNC and its kernel profile's FST4J_CUDA_KPROF in cuda_ops.c) is read and written without a data
 * race when two host threads make their first calls at once, as two threads running their first forwards of one model
 * do. A race there is benign on x86 as compiled today, so no Java test sees it: ThreadSanitizer does. sparse.c and
 * cuda_ops.c are compiled again with -fsanitize=thread and linked with the build's other objects into
 * src/test/c/first_use_race.c, whose first thread sets or reads each switch and whose second thread then reads it,
 * ordered only by a relaxed flag (no happens-before for TSan); any data race TSan reports fails the test. Skipped,
 * with the reason, where the C compiler cannot build or run a TSan program (no libtsan; a kernel whose address-space
 * layout TSan refuses). About a second.
 */
class ShimFirstUseRaceTest {
    private static final Path MODULE = Path.of(System.getProperty("basedir", System.getProperty("user.dir")));
    private static final Path C = MODULE.resolve("src/main/c"), OBJ = MODULE.resolve("target/obj");
    private static final List<String> CFLAGS = List.of("-std=c11", "-O1", "-g", "-fsanitize=thread", "-fPIC", "-D_GNU_SOURCE",
            "-Wall", "-Wextra", "-Werror");

    /** Runs cmd in dir; returns its exit code and output. */
    private static Result run(Path dir, List<String> cmd, String... env) throws IOException, InterruptedException {
        ProcessBuilder pb = new ProcessBuilder(cmd).directory(dir.toFile()).redirectErrorStream(true);
        for (int i = 0; i + 1 < env.length; i += 2) pb.environment().put(env[i], env[i + 1]);
        Process p = pb.start();
        String out = new String(p.getInputStream().readAllBytes());
        if (!p.waitFor(60, TimeUnit.SECONDS)) { p.destroyForcibly(); return new Result(-1, out + "\n(timed out)"); }
        return new Result(p.exitValue(), out);
    }

    private record Result(int rc, String out) {}

    private static List<String> cmd(String first, List<String> flags, String... rest) {
        List<String> c = new ArrayList<>(List.of(first));
        c.addAll(flags);
        c.addAll(List.of(rest));
        return c;
    }

    @Test
    void firstUsesOnTwoThreadsAreNotDataRaces(@TempDir Path tmp) throws Exception {
        // TSan usable here at all? (no libtsan, or "FATAL: ThreadSanitizer: unexpected memory mapping" on some kernels)
        Files.writeString(tmp.resolve("probe.c"), "int main(void) { return 0; }\n");
        Result probe = run(tmp, List.of("cc", "-fsanitize=thread", "probe.c", "-o", "probe"));
        if (probe.rc() == 0) probe = run(tmp, List.of(tmp.resolve("probe").toString()));
        String why = probe.out().strip();
        assumeTrue(probe.rc() == 0, () -> "the C compiler cannot build or run a ThreadSanitizer program here: " + why);

        assertTrue(Files.isRegularFile(OBJ.resolve("parallel.o")), "the build's objects are in " + OBJ + " (make in generate-resources)");
        boolean cuda = Files.isRegularFile(OBJ.resolve("cuda_emu.o"));   // built with the CUDA shims when nvcc was there
        List<String> objects = new ArrayList<>();
        try (Stream<Path> s = Files.list(OBJ)) {
            s.map(Path::getFileName).map(Path::toString).filter(n -> n.endsWith(".o"))
                    .filter(n -> !List.of("sparse.o", "cuda.o", "cuda_ops.o").contains(n) && (cuda || !n.equals("cuda_emu.o")))
                    .sorted().forEach(n -> objects.add(OBJ.resolve(n).toString()));
        }
        List<Result> steps = new ArrayList<>();
        steps.add(run(tmp, cmd("cc", CFLAGS, "-c", C.resolve("sparse.c").toString(), "-o", "sparse.o")));
        if (cuda) steps.add(run(tmp, cmd("cc", CFLAGS, "-c", C.resolve("cuda_ops.c").toString(), "-o", "cuda_ops.o")));
        List<String> driver = new ArrayList<>(CFLAGS);
        if (cuda) driver.add("-DFST_TSAN_CUDA");
        steps.add(run(tmp, cmd("cc", driver, "-c", MODULE.resolve("src/test/c/first_use_race.c").toString(), "-o", "driver.o")));
        List<String> link = new ArrayList<>(List.of(cuda ? "g++" : "cc", "-fsanitize=thread", "-o", "race", "driver.o", "sparse.o"));
        if (cuda) link.add("cuda_ops.o");
        link.addAll(objects);
        link.addAll(List.of("-lm", "-lpthread", "-ldl"));
        steps.add(run(tmp, link));
        for (Result r : steps) assertEquals(0, r.rc(), "building the TSan driver failed:\n" + r.out());

        Result race = run(tmp, List.of(tmp.resolve("race").toString()), "TSAN_OPTIONS", "exitcode=66 halt_on_error=0");
        assertFalse(race.out().contains("ThreadSanitizer: data race"), "a first use raced between two threads:\n" + race.out());
        assertEquals(0, race.rc(), race.out());
        assertTrue(race.out().contains("done"), race.out());
    }
}
