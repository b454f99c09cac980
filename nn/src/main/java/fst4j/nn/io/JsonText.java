package fst4j.nn.io;

import java.io.IOException;
import java.util.List;
import java.util.Map;

/**
 * The library's small JSON reader and writer for its own files (a run's summary.json): parse to Map (insertion ordered)
 * / List / String / Long / Double / Boolean / null, and write those back.
 */
public final class JsonText {
    private JsonText() {}

    /** The value of a JSON text; a malformed one is an IOException naming the character. */
    public static Object parse(String text) throws IOException {
        try {
            return Json.parse(text);
        } catch (Json.ParseException e) {
            throw new IOException("malformed JSON: " + e.getMessage(), e);
        }
    }

    /** v as compact JSON text (the types {@link #parse} returns; a non-finite number as null, as JSON has none). */
    public static String write(Object v) {
        StringBuilder sb = new StringBuilder();
        write(v, sb);
        return sb.toString();
    }

    private static void write(Object v, StringBuilder sb) {
        switch (v) {
            case null -> sb.append("null");
            case String s -> sb.append(Json.quote(s));
            case Boolean b -> sb.append(b);
            case Long l -> sb.append(l);
            case Integer i -> sb.append(i);
            case Double d -> sb.append(Double.isFinite(d) ? d.toString() : "null");
            case Map<?, ?> m -> {
                sb.append('{');
                int k = 0;
                for (var e : m.entrySet()) {
                    if (k++ > 0) sb.append(", ");
                    sb.append(Json.quote(String.valueOf(e.getKey()))).append(": ");
                    write(e.getValue(), sb);
                }
                sb.append('}');
            }
            case List<?> l -> {
                sb.append('[');
                for (int k = 0; k < l.size(); k++) {
                    if (k > 0) sb.append(", ");
                    write(l.get(k), sb);
                }
                sb.append(']');
            }
            default -> throw new IllegalArgumentException("not a JSON value: " + v.getClass().getName());
        }
    }
}
