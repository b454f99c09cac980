package fst4j.tensor;

/** Element type. F32 is the working type; F64 exists for gradcheck and float64 references. */
public enum DType {
    F32(4), F64(8);
    public final int bytes;
    DType(int bytes) { this.bytes = bytes; }
}
