package fst4j.nn.cli;

import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.util.function.ToIntBiFunction;

/** What one run of an fst4j command returned and printed, for the tests that check its exit status and messages. */
public record Outcome(int rc, String out, String err) {

    /** Runs command (a Main.run with its arguments bound, given stdout and stderr) with both streams captured as UTF-8. */
    public static Outcome of(ToIntBiFunction<PrintStream, PrintStream> command) {
        ByteArrayOutputStream o = new ByteArrayOutputStream(), e = new ByteArrayOutputStream();
        int rc = command.applyAsInt(new PrintStream(o, true, StandardCharsets.UTF_8), new PrintStream(e, true, StandardCharsets.UTF_8));
        return new Outcome(rc, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
    }

    /** The files a command left in dir, by name, and what each holds (hex; "a directory" for one): to compare before and after. */
    public static java.util.Map<String, String> filesIn(java.nio.file.Path dir) throws java.io.IOException {
        java.util.Map<String, String> m = new java.util.TreeMap<>();
        try (var files = java.nio.file.Files.list(dir)) {
            for (java.nio.file.Path p : files.toList())
                m.put(p.getFileName().toString(), java.nio.file.Files.isDirectory(p) ? "a directory"
                        : java.util.HexFormat.of().formatHex(java.nio.file.Files.readAllBytes(p)));
        }
        return m;
    }

    /** Something a test does to the file system while a command runs. */
    public interface Action { void run() throws Exception; }

    /**
     * As {@link #of}, doing action once, as soon as stdout holds marker (a command's "output in DIR" line, printed after
     * its checks and before its runs): how a test puts something in the way of an output that was fine when checked.
     */
    public static Outcome whenPrinted(String marker, Action action, ToIntBiFunction<PrintStream, PrintStream> command) {
        Throwable[] failed = {null};
        ByteArrayOutputStream o = new ByteArrayOutputStream() {
            boolean done;

            @Override
            public synchronized void write(byte[] b, int off, int len) {
                super.write(b, off, len);
                if (!done && toString(StandardCharsets.UTF_8).contains(marker)) {
                    done = true;
                    try {
                        action.run();
                    } catch (Exception ex) {
                        failed[0] = ex;
                    }
                }
            }
        };
        ByteArrayOutputStream e = new ByteArrayOutputStream();
        int rc = command.applyAsInt(new PrintStream(o, true, StandardCharsets.UTF_8), new PrintStream(e, true, StandardCharsets.UTF_8));
        if (failed[0] != null) throw new AssertionError("the action on '" + marker + "' failed", failed[0]);
        if (!o.toString(StandardCharsets.UTF_8).contains(marker)) throw new AssertionError("'" + marker + "' was never printed: " + o);
        return new Outcome(rc, o.toString(StandardCharsets.UTF_8), e.toString(StandardCharsets.UTF_8));
    }
}
