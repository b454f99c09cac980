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
}
