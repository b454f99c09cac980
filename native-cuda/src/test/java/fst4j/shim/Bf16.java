package fst4j.shim;

/**
 * float <-> bfloat16 on the host, round to nearest even with NaN kept (quiet): the reference the CUDA tests and the
 * GEMM benchmark check the device's conversions and bf16 products against.
 */
final class Bf16 {
    private Bf16() {}

    /** The bf16 bits of the float with these bits. */
    static short bits(int floatBits) {
        if ((floatBits & 0x7fffffff) > 0x7f800000) return (short) ((floatBits >>> 16) | 0x40);
        return (short) ((floatBits + 0x7fff + ((floatBits >>> 16) & 1)) >>> 16);
    }

    static short of(float f) { return bits(Float.floatToRawIntBits(f)); }

    static float value(short h) { return Float.intBitsToFloat((h & 0xffff) << 16); }

    /** f rounded to the nearest bf16, as a float. */
    static float round(float f) { return value(of(f)); }
}
