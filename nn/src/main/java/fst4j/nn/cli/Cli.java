package fst4j.nn.cli;

import fst4j.nn.data.DatasetNotFoundException;
import fst4j.nn.train.TrainData;

import java.io.IOException;
import java.io.PrintStream;
import java.io.UncheckedIOException;
import java.util.Arrays;
import java.util.List;

/**
 * What the fst4j commands (train, eval, experiment, analyze) share around their own work: {@code -h}/{@code --help}
 * anywhere on the line prints the help and exits 0; a bad command line is one line "fst4j NAME: problem; usage: ..." (a
 * long usage shortened to its command words and a pointer to --help)
 * and exit status 2; a failure is one line and exit status 1 (a missing data set two: what is missing where, then the
 * command that installs it, alone), so a script sees the reason and not a stack trace.
 */
public final class Cli {
    private Cli() {}

    /** A bad command line: the message is the one-line problem. */
    public static final class UsageException extends Exception {
        private static final long serialVersionUID = 1L;
        public UsageException(String m) { super(m); }
    }

    /** Where --data values are loaded from (tests substitute it). */
    @FunctionalInterface
    public interface DataSource { TrainData load(String spec) throws IOException; }

    /** A command's work once --help is ruled out; returns the exit status. */
    @FunctionalInterface
    public interface Body { int run() throws UsageException, IOException; }

    /**
     * One command: its name in "fst4j NAME: ...", its help and usage texts, and the unchecked exceptions it reports as a
     * one-line failure besides the ones every command does (IllegalArgumentException, UncheckedIOException); any other
     * exception escapes as before. The lists differ per command because each command has always caught its own set.
     */
    public record Command(String name, String help, String usage, List<Class<? extends RuntimeException>> alsoFailures) {

        public int run(String[] args, PrintStream out, PrintStream err, Body body) {
            try {
                if (Arrays.asList(args).contains("-h") || Arrays.asList(args).contains("--help")) {
                    out.print(help);
                    out.println(usage);
                    return 0;
                }
                return body.run();
            } catch (UsageException e) {
                err.println("fst4j " + name + ": " + e.getMessage() + "; " + shortUsage());
                return 2;
            } catch (DatasetNotFoundException e) {   // what is missing where, then the line to run, alone (to copy)
                err.println("fst4j " + name + ": " + (e.where() != null ? e.where() : "the data set is not installed")
                        + "; install it with this command (or ./fst4j setup), then run this one again:");
                err.println(e.getMessage());
                return 1;
            } catch (IOException | UncheckedIOException | IllegalArgumentException e) {
                return failed(err, e);
            } catch (RuntimeException e) {
                if (alsoFailures.stream().noneMatch(c -> c.isInstance(e))) throw e;
                return failed(err, e);
            }
        }

        /**
         * The usage for an error line: the whole text where it is short, else its command words and where the flags are
         * listed (train's full usage is ~1,000 characters, in which the line's one useful sentence got lost).
         */
        String shortUsage() {
            if (usage.length() <= 160) return usage;
            int flags = usage.indexOf(" [");
            return (flags > 0 ? usage.substring(0, flags) : usage) + " [flags] (fst4j " + name + " --help lists them)";
        }

        private int failed(PrintStream err, Exception e) {
            err.println("fst4j " + name + ": " + message(e));
            return 1;
        }
    }

    /** e's message in a user's words: {@link fst4j.nn.io.IoText#message}. */
    static String message(Exception e) { return fst4j.nn.io.IoText.message(e); }
}
