package fst4j.nn.cli;

import fst4j.nn.cli.Cli.UsageException;
import fst4j.nn.data.DatasetNotFoundException;
import fst4j.nn.train.CheckpointException;
import org.junit.jupiter.api.Test;

import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.nio.file.Path;
import java.util.List;
import java.util.Map;

import static org.junit.jupiter.api.Assertions.*;

/** The frame the four commands share: help, usage errors, failures; and each command's use of it. */
class CliTest {
    private static final String NL = System.lineSeparator();
    private static final Cli.Command TOY = new Cli.Command("toy", "fst4j toy: a command for this test\n", "usage: fst4j toy [--x]",
            List.of(CheckpointException.class));

    private static Outcome toy(Cli.Body body, String... args) { return Outcome.of((out, err) -> TOY.run(args, out, err, body)); }

    @Test
    void helpAnywhereOnTheLinePrintsHelpAndUsageWithoutRunningTheCommand() {
        for (String[] args : List.of(new String[]{"--help"}, new String[]{"-h"}, new String[]{"--x", "--bogus", "--help"})) {
            Outcome r = toy(() -> { throw new AssertionError("ran"); }, args);
            assertEquals(new Outcome(0, "fst4j toy: a command for this test\nusage: fst4j toy [--x]" + NL, ""), r);
        }
    }

    @Test
    void eachProblemIsOneLineAndItsExitStatus() {
        assertEquals(new Outcome(7, "", ""), toy(() -> 7));
        assertEquals(new Outcome(2, "", "fst4j toy: bad; usage: fst4j toy [--x]" + NL), toy(() -> { throw new UsageException("bad"); }));
        // a long usage (train's is ~1,000 characters) is cut to its command words on the error line; --help prints it whole
        Cli.Command big = new Cli.Command("big", "help\n", "usage: fst4j big MODE " + "[--flag X] ".repeat(30), List.of());
        assertEquals(new Outcome(2, "", "fst4j big: bad; usage: fst4j big MODE [flags] (fst4j big --help lists them)" + NL),
                Outcome.of((out, err) -> big.run(new String[0], out, err, () -> { throw new UsageException("bad"); })));
        // what is missing where, then the command alone on its line
        assertEquals(new Outcome(1, "", "fst4j toy: the data set is not installed; install it with this command (or ./fst4j setup), then run this one"
                + " again:" + NL + "apt-get install it" + NL), toy(() -> { throw new DatasetNotFoundException("apt-get install it"); }));
        for (Exception e : List.of(new IOException("io"), new UncheckedIOException(new IOException("uio")), new IllegalArgumentException("iae"),
                new CheckpointException(Path.of("c.safetensors"), "broken", null))) {
            assertEquals(new Outcome(1, "", "fst4j toy: " + e.getMessage() + NL), toy(() -> {
                if (e instanceof IOException io) throw io;
                throw (RuntimeException) e;
            }), e.toString());
        }
    }

    /**
     * File-system failures whose message is only the path say what went wrong with it: --out naming an existing file
     * printed "fst4j toy: /tmp/.../file" (Files.createDirectories' FileAlreadyExistsException); one without a message
     * printed "null".
     */
    @Test
    void pathOnlyAndMissingMessagesSayWhatHappened(@org.junit.jupiter.api.io.TempDir Path tmp) throws IOException {
        Path file = java.nio.file.Files.writeString(tmp.resolve("file"), "x");
        assertEquals(new Outcome(1, "", "fst4j toy: " + file + ": exists and is not a directory" + NL),
                toy(() -> { java.nio.file.Files.createDirectories(file); return 0; }));
        assertEquals(new Outcome(1, "", "fst4j toy: " + tmp.resolve("none") + ": no such file or directory" + NL),
                toy(() -> { java.nio.file.Files.readString(tmp.resolve("none")); return 0; }));
        assertEquals(new Outcome(1, "", "fst4j toy: ClosedByInterruptException" + NL),
                toy(() -> { throw new java.nio.channels.ClosedByInterruptException(); }));
        // a message that says what happened is kept as it is
        assertEquals(new Outcome(1, "", "fst4j toy: " + file.resolve("sub") + ": Not a directory" + NL),
                toy(() -> { java.nio.file.Files.createDirectories(file.resolve("sub")); return 0; }));
    }

    @Test
    void exceptionsTheCommandDoesNotListEscape() {
        var e = new IllegalStateException("a bug");
        assertSame(e, assertThrows(IllegalStateException.class, () -> toy(() -> { throw e; })));
        var experimentLike = new Cli.Command("toy", "", "usage", List.of());
        var ckpt = new CheckpointException(Path.of("c.safetensors"), "broken", null);
        PrintStream nowhere = new PrintStream(OutputStream.nullOutputStream());
        assertSame(ckpt, assertThrows(CheckpointException.class, () -> experimentLike.run(new String[0], nowhere, nowhere, () -> { throw ckpt; })));
    }

    /** The four commands' public run, and the arguments each needs before its flags. */
    private static final Map<String, Runner> COMMANDS = Map.of("train", fst4j.nn.train.Main::run, "eval", fst4j.nn.eval.Main::run,
            "experiment", fst4j.nn.experiment.Main::run, "analyze", fst4j.nn.analysis.Main::run);
    private static final Map<String, String[]> FIRST_ARGS = Map.of("train", new String[0], "eval", new String[]{"x.safetensors"},
            "experiment", new String[]{"table1"}, "analyze", new String[]{"similarity"});

    /** What each command's public run does with --help and with a bad flag (the latter loads no data). */
    @Test
    void everyCommandHelpsAndRejectsAnUnknownFlag() {
        for (var c : COMMANDS.entrySet()) {
            String name = c.getKey();
            Outcome help = Outcome.of((out, err) -> c.getValue().run(new String[]{"--help"}, out, err));
            assertEquals(0, help.rc(), name);
            assertEquals("", help.err(), name);
            assertTrue(help.out().startsWith("fst4j " + name), help.out());
            String usage = help.out().lines().toList().getLast();
            assertTrue(usage.startsWith("usage: fst4j " + name + " "), usage);

            String[] args = concat(FIRST_ARGS.get(name), "--bogus");
            Outcome bad = Outcome.of((out, err) -> c.getValue().run(args, out, err));
            // the error line's usage: the command words and a pointer to --help where the whole usage is long
            String shortUsage = usage.length() <= 160 ? usage : usage.substring(0, usage.indexOf(" [")) + " [flags] (fst4j " + name + " --help lists them)";
            assertEquals(new Outcome(2, "", "fst4j " + name + ": unknown flag --bogus; " + shortUsage + NL), bad, name);
        }
    }

    /**
     * An empty flag value (an unset shell variable) is a usage error in every command: --out "" wrote the outputs into
     * the current directory (Path.of("")), and eval "" said "no checkpoint file " with nothing after it.
     */
    @Test
    void emptyValuesAreUsageErrors() {
        for (var c : COMMANDS.entrySet())
            for (String flag : List.of("--out", "--data", "--threads")) {
                if (c.getKey().equals("eval") && flag.equals("--out")) continue;
                for (String[] args : List.of(concat(FIRST_ARGS.get(c.getKey()), flag, ""), concat(FIRST_ARGS.get(c.getKey()), flag + "= "))) {
                    Outcome r = Outcome.of((out, err) -> c.getValue().run(args, out, err));
                    assertEquals(2, r.rc(), c.getKey() + " " + String.join(" ", args) + ": " + r.err());
                    assertTrue(r.err().startsWith("fst4j " + c.getKey() + ": " + flag + " needs a value, got '"), r.err());
                }
            }
        assertEquals("fst4j eval: which checkpoint?; ", usageError((a, out, err) -> fst4j.nn.eval.Main.run(new String[]{""}, out, err)));
    }

    /** The commands' first argument: what each says when it is missing. */
    @Test
    void missingFirstArgumentsAreUsageErrors() {
        assertEquals("fst4j eval: which checkpoint?; ", usageError(fst4j.nn.eval.Main::run));
        assertEquals("fst4j experiment: which table? (table1, table3, table5, all, ir, table2, methods, transformer or flip); ", usageError(fst4j.nn.experiment.Main::run));
        assertEquals("fst4j analyze: which analysis? (similarity); ", usageError(fst4j.nn.analysis.Main::run));
    }

    @FunctionalInterface
    interface Runner { int run(String[] args, PrintStream out, PrintStream err); }

    private static String usageError(Runner command) {
        Outcome r = Outcome.of((out, err) -> command.run(new String[0], out, err));
        assertEquals(2, r.rc(), r.err());
        return r.err().substring(0, r.err().indexOf("usage: "));
    }

    private static String[] concat(String[] a, String... b) {
        String[] o = java.util.Arrays.copyOf(a, a.length + b.length);
        System.arraycopy(b, 0, o, a.length, b.length);
        return o;
    }
}
