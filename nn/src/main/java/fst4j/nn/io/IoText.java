package fst4j.nn.io;

import java.nio.file.AccessDeniedException;
import java.nio.file.DirectoryNotEmptyException;
import java.nio.file.FileAlreadyExistsException;
import java.nio.file.FileSystemException;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.NotDirectoryException;
import java.nio.file.Path;

/** What a file-system failure was, in words a user reads (not a Java exception's class name). */
public final class IoText {
    private IoText() {}

    /**
     * e's message, where that says what went wrong. Some file-system exceptions carry only the path (--out naming an
     * existing file gave "fst4j train: /tmp/x", from Files.createDirectories' FileAlreadyExistsException): those get
     * what happened to it; an exception without a message (an interrupted write's ClosedByInterruptException) its name.
     */
    public static String message(Exception e) {
        if (e instanceof FileSystemException f && f.getFile() != null) {
            String what = f.getReason() != null ? f.getReason() : reason(f);
            return f.getFile() + (f.getOtherFile() != null ? " -> " + f.getOtherFile() : "") + ": " + what;
        }
        String m = e.getMessage();
        return m == null || m.isBlank() ? e.getClass().getSimpleName() : m;
    }

    /**
     * A hidden name beside file for this process and moment (".NAME.PID.NANOS" + suffix), for a temporary or backup file
     * made as any output is (the umask's mode; createTempFile's is owner-only, so shared runs' files were unreadable).
     */
    public static Path sibling(Path file, String suffix) {
        return file.resolveSibling("." + file.getFileName() + "." + ProcessHandle.current().pid() + "." + System.nanoTime() + suffix);
    }

    /** Only what happened, without the path (the reason, or the exception's kind in words). */
    public static String reason(Exception e) {
        if (!(e instanceof FileSystemException f)) return message(e);
        if (f.getReason() != null) return f.getReason();
        return switch (f) {
            case NoSuchFileException _ -> "no such file or directory";
            case FileAlreadyExistsException _ -> f.getFile() != null && Files.exists(Path.of(f.getFile())) && !Files.isDirectory(Path.of(f.getFile()))
                    ? "exists and is not a directory" : "already exists";
            case AccessDeniedException _ -> "permission denied";
            case NotDirectoryException _ -> "not a directory";
            case DirectoryNotEmptyException _ -> "directory not empty";
            default -> f.getClass().getSimpleName();
        };
    }
}
