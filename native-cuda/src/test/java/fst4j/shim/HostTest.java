package fst4j.shim;

import org.junit.jupiter.api.Test;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertTrue;

class HostTest {

    /** Two processors whose fields differ: the first block's are taken, and "model" is not confused with "model name". */
    @Test
    void takesTheFirstProcessorsFields() {
        String info = """
                processor\t: 0
                vendor_id\t: AuthenticAMD
                cpu family\t: 26
                model\t\t: 2
                model name\t: AMD EPYC 9R45 32-Core Processor
                flags\t\t: fpu avx512f

                processor\t: 1
                vendor_id\t: GenuineIntel
                cpu family\t: 6
                model\t\t: 167
                model name\t: Intel(R) Xeon(R) Processor
                """;
        Host h = Host.parse(info, 2, "avx512");
        assertEquals(new Host("AuthenticAMD", "AMD EPYC 9R45 32-Core Processor", 26, 2, 2, "avx512"), h);
        assertEquals("AMD EPYC 9R45 32-Core Processor (AuthenticAMD, family 26, model 2), 2 CPUs, kernels avx512", h.describe());
    }

    /** No cpuinfo (another OS, a sandbox): "unknown" and -1, never an exception. */
    @Test
    void missingFieldsAreUnknown() {
        Host h = Host.parse("", 1, "generic");
        assertEquals(new Host("unknown", "unknown", -1, -1, 1, "generic"), h);
        assertEquals("unknown (unknown, family -1, model -1), 1 CPU, kernels generic", h.describe());
        assertEquals(-1, Host.parse("cpu family\t: x86\n", 1, "generic").family(), "a field that is not a number");
    }

    /** This machine: the shim is built for the tests, so its kernel family is named, and the CPU count is the JVM's. */
    @Test
    void currentNamesThisMachine() {
        Host h = Host.current();
        assertEquals(Runtime.getRuntime().availableProcessors(), h.cpus());
        assertEquals(Native.isa(), h.kernels());
        assertFalse(h.describe().isBlank());
        if (System.getProperty("os.name").startsWith("Linux")) assertTrue(h.family() > 0, h.describe());
    }
}
