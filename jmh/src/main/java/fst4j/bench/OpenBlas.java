package fst4j.bench;

import java.lang.foreign.Arena;
import java.lang.foreign.FunctionDescriptor;
import java.lang.foreign.Linker;
import java.lang.foreign.SymbolLookup;
import java.lang.invoke.MethodHandle;

import static java.lang.foreign.ValueLayout.ADDRESS;
import static java.lang.foreign.ValueLayout.JAVA_FLOAT;
import static java.lang.foreign.ValueLayout.JAVA_INT;

/**
 * OpenBLAS's {@code cblas_sgemm}, bound through FFM for the benchmarks only (the peer fst4j is compared with).
 * The library is {@code -Dfst4j.openblas=PATH} or {@code libopenblas.so.0}.
 */
final class OpenBlas {
    private OpenBlas() {}

    /** cblas_sgemm(order, transA, transB, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc), with its thread count set. */
    static MethodHandle sgemm(Arena arena, int threads) throws Throwable {
        String name = System.getProperty("fst4j.openblas", "libopenblas.so.0");
        SymbolLookup lib;
        try {
            lib = SymbolLookup.libraryLookup(name, arena);
        } catch (IllegalArgumentException e) {
            throw new IllegalStateException("OpenBLAS (" + name + ") not found: apt-get install libopenblas0-pthread");
        }
        Linker linker = Linker.nativeLinker();
        MethodHandle setThreads = linker.downcallHandle(lib.find("openblas_set_num_threads").orElseThrow(),
                FunctionDescriptor.ofVoid(JAVA_INT));
        setThreads.invokeExact(threads);
        return linker.downcallHandle(lib.find("cblas_sgemm").orElseThrow(), FunctionDescriptor.ofVoid(
                JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT,
                ADDRESS, JAVA_INT, JAVA_FLOAT, ADDRESS, JAVA_INT));
    }
}
