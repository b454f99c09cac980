package fst4j.nn.io;

import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * Minimal JSON for safetensors headers: a strict RFC 8259 parser to Map (insertion ordered) / List / String /
 * Long (integers) / Double / Boolean / null, and string quoting for the writer. Not public API.
 */
final class Json {
    private Json() {}

    /** Thrown for malformed JSON; pos is the character index in the text. */
    static final class ParseException extends Exception {
        private static final long serialVersionUID = 1L;
        final int pos;
        ParseException(int pos, String msg) { super(msg + " at character " + pos); this.pos = pos; }
    }

    static Object parse(String s) throws ParseException {
        Json.Parser p = new Json.Parser(s);
        p.ws();
        Object v = p.value(0);
        p.ws();
        if (p.i != s.length()) throw new ParseException(p.i, "unexpected trailing text");
        return v;
    }

    /** s as a JSON string literal, quotes included. */
    static String quote(String s) {
        StringBuilder sb = new StringBuilder(s.length() + 2).append('"');
        for (int k = 0; k < s.length(); k++) {
            char c = s.charAt(k);
            switch (c) {
                case '"' -> sb.append("\\\"");
                case '\\' -> sb.append("\\\\");
                case '\n' -> sb.append("\\n");
                case '\r' -> sb.append("\\r");
                case '\t' -> sb.append("\\t");
                case '\b' -> sb.append("\\b");
                case '\f' -> sb.append("\\f");
                default -> {
                    if (c < 0x20) sb.append(String.format("\\u%04x", (int) c));
                    else sb.append(c);
                }
            }
        }
        return sb.append('"').toString();
    }

    private static final class Parser {
        private static final int MAX_DEPTH = 64;
        final String s;
        int i;

        Parser(String s) { this.s = s; }

        void ws() {
            while (i < s.length()) {
                char c = s.charAt(i);
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') i++;
                else break;
            }
        }

        char peek() throws ParseException {
            if (i >= s.length()) throw new ParseException(i, "unexpected end of JSON");
            return s.charAt(i);
        }

        void expect(char c) throws ParseException {
            if (peek() != c) throw new ParseException(i, "expected '" + c + "' but found '" + s.charAt(i) + "'");
            i++;
        }

        Object value(int depth) throws ParseException {
            if (depth > MAX_DEPTH) throw new ParseException(i, "nesting deeper than " + MAX_DEPTH);
            char c = peek();
            return switch (c) {
                case '{' -> object(depth);
                case '[' -> array(depth);
                case '"' -> string();
                case 't' -> literal("true", Boolean.TRUE);
                case 'f' -> literal("false", Boolean.FALSE);
                case 'n' -> literal("null", null);
                default -> {
                    if (c == '-' || (c >= '0' && c <= '9')) yield number();
                    throw new ParseException(i, "unexpected character '" + c + "'");
                }
            };
        }

        Object literal(String word, Object v) throws ParseException {
            if (!s.startsWith(word, i)) throw new ParseException(i, "invalid literal");
            i += word.length();
            return v;
        }

        Map<String, Object> object(int depth) throws ParseException {
            expect('{');
            Map<String, Object> m = new LinkedHashMap<>();
            ws();
            if (peek() == '}') { i++; return m; }
            while (true) {
                ws();
                int at = i;
                if (peek() != '"') throw new ParseException(i, "expected a string key");
                String k = string();
                ws();
                expect(':');
                ws();
                Object v = value(depth + 1);
                if (m.containsKey(k)) throw new ParseException(at, "duplicate key " + quote(k));
                m.put(k, v);
                ws();
                char c = peek();
                i++;
                if (c == '}') return m;
                if (c != ',') throw new ParseException(i - 1, "expected ',' or '}'");
            }
        }

        List<Object> array(int depth) throws ParseException {
            expect('[');
            List<Object> l = new ArrayList<>();
            ws();
            if (peek() == ']') { i++; return l; }
            while (true) {
                ws();
                l.add(value(depth + 1));
                ws();
                char c = peek();
                i++;
                if (c == ']') return l;
                if (c != ',') throw new ParseException(i - 1, "expected ',' or ']'");
            }
        }

        String string() throws ParseException {
            expect('"');
            StringBuilder sb = new StringBuilder();
            while (true) {
                char c = peek();
                i++;
                if (c == '"') return sb.toString();
                if (c < 0x20) throw new ParseException(i - 1, "control character in string");
                if (c != '\\') { sb.append(c); continue; }
                char e = peek();
                i++;
                switch (e) {
                    case '"' -> sb.append('"');
                    case '\\' -> sb.append('\\');
                    case '/' -> sb.append('/');
                    case 'b' -> sb.append('\b');
                    case 'f' -> sb.append('\f');
                    case 'n' -> sb.append('\n');
                    case 'r' -> sb.append('\r');
                    case 't' -> sb.append('\t');
                    case 'u' -> {
                        if (i + 4 > s.length()) throw new ParseException(i, "truncated \\u escape");
                        int cp = 0;
                        for (int k = 0; k < 4; k++) {
                            int d = Character.digit(s.charAt(i + k), 16);
                            if (d < 0) throw new ParseException(i + k, "bad hex digit in \\u escape");
                            cp = cp * 16 + d;
                        }
                        i += 4;
                        sb.append((char) cp);
                    }
                    default -> throw new ParseException(i - 1, "bad escape '\\" + e + "'");
                }
            }
        }

        Object number() throws ParseException {
            int start = i;
            if (s.charAt(i) == '-') i++;
            if (i >= s.length() || !Character.isDigit(s.charAt(i))) throw new ParseException(i, "bad number");
            if (s.charAt(i) == '0') i++;
            else while (i < s.length() && Character.isDigit(s.charAt(i))) i++;
            boolean integral = true;
            if (i < s.length() && s.charAt(i) == '.') {
                integral = false;
                i++;
                int d = i;
                while (i < s.length() && Character.isDigit(s.charAt(i))) i++;
                if (i == d) throw new ParseException(i, "bad number: no digits after '.'");
            }
            if (i < s.length() && (s.charAt(i) == 'e' || s.charAt(i) == 'E')) {
                integral = false;
                i++;
                if (i < s.length() && (s.charAt(i) == '+' || s.charAt(i) == '-')) i++;
                int d = i;
                while (i < s.length() && Character.isDigit(s.charAt(i))) i++;
                if (i == d) throw new ParseException(i, "bad number: no exponent digits");
            }
            String t = s.substring(start, i);
            if (integral) {
                try { return Long.parseLong(t); } catch (NumberFormatException ex) { /* too large: keep as double */ }
            }
            return Double.parseDouble(t);
        }
    }
}
