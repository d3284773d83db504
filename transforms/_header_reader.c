/*
 * read_header: transforms.envelope.parse_envelope's header reading, on a file's own bytes.
 *
 * parse_envelope needs the whole file decoded to text, and extract_body then encodes the body
 * back to UTF-8 for libxml2. This reads the header straight from the bytes instead and says
 * where the body starts, so the body goes to libxml2 as the file holds it. It takes only the
 * files it can read exactly as parse_envelope does and returns None for every other one (any
 * file parse_envelope would reject, a NUL or CR byte, bytes that are not UTF-8, a backslash
 * escape, a front matter key or an epoch with non-ASCII characters): the caller then runs
 * parse_envelope itself, which also words every reject. Whitespace is Python's (str.isspace,
 * re's \s), decoded from the UTF-8. The test suite checks both give the same envelopes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

typedef const unsigned char *Bytes;

/* Whether the n bytes at s are valid UTF-8, by the rules of Python's strict decoder. */
static int valid_utf8(Bytes s, Py_ssize_t n)
{
    Py_ssize_t i = 0;
    while (i < n) {
        unsigned char b = s[i];
        if (b < 0x80) {
            i += 1;
            /* Markup is mostly ASCII: skip it eight bytes at a time. */
            while (i + 8 <= n) {
                uint64_t word;
                memcpy(&word, s + i, 8);
                if (word & 0x8080808080808080ULL) {
                    break;
                }
                i += 8;
            }
            continue;
        }
        int length;
        unsigned char low = 0x80, high = 0xBF; /* the allowed range of the second byte */
        if (b >= 0xC2 && b <= 0xDF) {
            length = 2;
        }
        else if (b >= 0xE0 && b <= 0xEF) {
            length = 3;
            if (b == 0xE0) {
                low = 0xA0; /* no overlong forms */
            }
            else if (b == 0xED) {
                high = 0x9F; /* no surrogates */
            }
        }
        else if (b >= 0xF0 && b <= 0xF4) {
            length = 4;
            if (b == 0xF0) {
                low = 0x90;
            }
            else if (b == 0xF4) {
                high = 0x8F; /* nothing above U+10FFFF */
            }
        }
        else {
            return 0;
        }
        if (i + length > n || s[i + 1] < low || s[i + 1] > high) {
            return 0;
        }
        for (int k = 2; k < length; k++) {
            if ((s[i + k] & 0xC0) != 0x80) {
                return 0;
            }
        }
        i += length;
    }
    return 1;
}

/* The code point at s[i] of valid UTF-8, and its length in bytes. */
static Py_UCS4 code_point_at(Bytes s, Py_ssize_t i, int *length)
{
    unsigned char b = s[i];
    if (b < 0x80) {
        *length = 1;
        return b;
    }
    if (b < 0xE0) {
        *length = 2;
        return ((Py_UCS4)(b & 0x1F) << 6) | (s[i + 1] & 0x3F);
    }
    if (b < 0xF0) {
        *length = 3;
        return ((Py_UCS4)(b & 0x0F) << 12) | ((Py_UCS4)(s[i + 1] & 0x3F) << 6) |
               (s[i + 2] & 0x3F);
    }
    *length = 4;
    return ((Py_UCS4)(b & 0x07) << 18) | ((Py_UCS4)(s[i + 1] & 0x3F) << 12) |
           ((Py_UCS4)(s[i + 2] & 0x3F) << 6) | (s[i + 3] & 0x3F);
}

/* The code point that ends just before s[end] of valid UTF-8, and where it starts. */
static Py_UCS4 code_point_before(Bytes s, Py_ssize_t end, Py_ssize_t *start)
{
    Py_ssize_t i = end - 1;
    while ((s[i] & 0xC0) == 0x80) {
        i--;
    }
    int length;
    *start = i;
    return code_point_at(s, i, &length);
}

/* str.isspace of one code point (also what re's \s matches). */
static int py_space(Py_UCS4 c)
{
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

/* str.lstrip() and str.rstrip() of s[*a:*b], moving the bounds. */
static void lstrip_span(Bytes s, Py_ssize_t *a, Py_ssize_t b)
{
    while (*a < b) {
        int length;
        if (!py_space(code_point_at(s, *a, &length))) {
            return;
        }
        *a += length;
    }
}

static void rstrip_span(Bytes s, Py_ssize_t a, Py_ssize_t *b)
{
    while (*b > a) {
        Py_ssize_t start;
        if (!py_space(code_point_before(s, *b, &start))) {
            return;
        }
        *b = start;
    }
}

static void strip_span(Bytes s, Py_ssize_t *a, Py_ssize_t *b)
{
    lstrip_span(s, a, *b);
    rstrip_span(s, *a, b);
}

/* transforms.envelope._next_line: the line at pos (without its newline) and where the next
 * one starts. */
static void next_line(Bytes s, Py_ssize_t n, Py_ssize_t pos, Py_ssize_t *a, Py_ssize_t *b,
                      Py_ssize_t *after)
{
    if (pos >= n) {
        *a = *b = *after = n;
        return;
    }
    const unsigned char *newline = memchr(s + pos, '\n', (size_t)(n - pos));
    *a = pos;
    if (newline == NULL) {
        *b = *after = n;
        return;
    }
    *b = newline - s;
    *after = *b + 1;
}

/* transforms.envelope._skip_blank_lines. */
static Py_ssize_t skip_blank_lines(Bytes s, Py_ssize_t n, Py_ssize_t pos)
{
    for (;;) {
        Py_ssize_t a, b, after;
        next_line(s, n, pos, &a, &b, &after);
        strip_span(s, &a, &b);
        if (a < b || after >= n) {
            return pos;
        }
        pos = after;
    }
}

/* text.find(needle, from) on bytes (the needle is ASCII, so byte offsets agree). */
static Py_ssize_t find(Bytes s, Py_ssize_t n, const char *needle, Py_ssize_t from)
{
    Py_ssize_t length = (Py_ssize_t)strlen(needle);
    for (Py_ssize_t i = from; i + length <= n; i++) {
        const unsigned char *at = memchr(s + i, needle[0], (size_t)(n - length + 1 - i));
        if (at == NULL) {
            return -1;
        }
        i = at - s;
        if (memcmp(at, needle, (size_t)length) == 0) {
            return i;
        }
    }
    return -1;
}

static PyObject *text_of(Bytes s, Py_ssize_t a, Py_ssize_t b)
{
    return PyUnicode_DecodeUTF8((const char *)s + a, b - a, "strict");
}

/* Results of the readers below: a new reference, or NULL with an exception set, or BAIL
 * (not a reference) when parse_envelope must decide. */
static PyObject bail_marker;
#define BAIL (&bail_marker)

/* transforms.envelope._scalar of s[a:b] (stripped). */
static PyObject *scalar(Bytes s, Py_ssize_t a, Py_ssize_t b)
{
    if (b - a >= 2 && s[a] == '"' && s[b - 1] == '"') {
        if (memchr(s + a, '\\', (size_t)(b - a)) != NULL) {
            return BAIL; /* JSON escapes: parse_envelope's json.loads reads them */
        }
        return text_of(s, a + 1, b - 1);
    }
    if (b - a >= 2 && s[a] == '\'' && s[b - 1] == '\'') {
        Py_ssize_t inner = b - 1 - (a + 1);
        char *unquoted = PyMem_Malloc(inner > 0 ? (size_t)inner : 1);
        if (unquoted == NULL) {
            return PyErr_NoMemory();
        }
        Py_ssize_t length = 0;
        for (Py_ssize_t i = a + 1; i < b - 1; i++) {
            unquoted[length++] = (char)s[i];
            if (s[i] == '\'' && i + 1 < b - 1 && s[i + 1] == '\'') {
                i++; /* '' stands for ' */
            }
        }
        PyObject *value = PyUnicode_DecodeUTF8(unquoted, length, "strict");
        PyMem_Free(unquoted);
        return value;
    }
    return text_of(s, a, b);
}

/* transforms.envelope._front_matter_value of s[a:b] (stripped). */
static PyObject *front_matter_value(Bytes s, Py_ssize_t a, Py_ssize_t b)
{
    if (!(b > a && s[a] == '[' && s[b - 1] == ']')) {
        return scalar(s, a, b);
    }
    PyObject *items = PyList_New(0);
    if (items == NULL) {
        return NULL;
    }
    Py_ssize_t inner_start = a + 1, inner_end = b - 1 > a + 1 ? b - 1 : a + 1;
    Py_ssize_t part = inner_start;
    for (;;) {
        const unsigned char *comma =
            memchr(s + part, ',', (size_t)(inner_end - part));
        Py_ssize_t part_end = comma == NULL ? inner_end : comma - s;
        Py_ssize_t pa = part, pb = part_end;
        strip_span(s, &pa, &pb);
        PyObject *item = scalar(s, pa, pb);
        if (item == NULL || item == BAIL) {
            Py_DECREF(items);
            return item;
        }
        int status = PyUnicode_GET_LENGTH(item) > 0 ? PyList_Append(items, item) : 0;
        Py_DECREF(item);
        if (status < 0) {
            Py_DECREF(items);
            return NULL;
        }
        if (comma == NULL) {
            return items;
        }
        part = part_end + 1;
    }
}

/* Whether s[a:b] is a front matter key by _FRONT_MATTER_KEY, [A-Za-z_][\w-]*, in ASCII:
 * 1 yes, 0 no, -1 it holds a non-ASCII byte (\w would need Unicode's rules). */
static int ascii_key(Bytes s, Py_ssize_t a, Py_ssize_t b)
{
    if (a >= b) {
        return 0;
    }
    for (Py_ssize_t i = a; i < b; i++) {
        if (s[i] >= 0x80) {
            return -1;
        }
    }
    unsigned char first = s[a];
    if (!(first == '_' || (first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z'))) {
        return 0;
    }
    for (Py_ssize_t i = a + 1; i < b; i++) {
        unsigned char c = s[i];
        if (!(c == '_' || c == '-' || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9'))) {
            return 0;
        }
    }
    return 1;
}

/* transforms.envelope.parse_front_matter of the block s[a:b]. */
static PyObject *front_matter(Bytes s, Py_ssize_t a, Py_ssize_t b)
{
    PyObject *fields = PyDict_New();
    if (fields == NULL) {
        return NULL;
    }
    Py_ssize_t pos = a;
    while (pos < b) {
        const unsigned char *newline = memchr(s + pos, '\n', (size_t)(b - pos));
        Py_ssize_t la = pos, lb = newline == NULL ? b : newline - s;
        pos = lb + 1;
        strip_span(s, &la, &lb);
        if (la == lb || s[la] == '#') {
            continue;
        }
        const unsigned char *colon = memchr(s + la, ':', (size_t)(lb - la));
        if (colon == NULL) {
            goto bail;
        }
        Py_ssize_t ka = la, kb = colon - s, va = kb + 1, vb = lb;
        rstrip_span(s, ka, &kb);
        if (va < vb) {
            int length;
            if (!py_space(code_point_at(s, va, &length))) {
                goto bail;
            }
        }
        if (ascii_key(s, ka, kb) != 1) {
            goto bail;
        }
        strip_span(s, &va, &vb);
        PyObject *key = text_of(s, ka, kb);
        if (key == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
        PyObject *value = front_matter_value(s, va, vb);
        if (value == NULL || value == BAIL) {
            Py_DECREF(key);
            Py_DECREF(fields);
            return value;
        }
        int status = PyDict_SetItem(fields, key, value);
        Py_DECREF(key);
        Py_DECREF(value);
        if (status < 0) {
            Py_DECREF(fields);
            return NULL;
        }
    }
    return fields;
bail:
    Py_DECREF(fields);
    return BAIL;
}

/* The digits of an epoch line, _EPOCH_LINE.fullmatch of the stripped s[a:b]
 * (<!--\s*(-?\d+)\s*-->): 1 and the digits' span, 0 no match, -1 when an epoch-shaped line
 * holds a non-ASCII byte (\s and \d would need Unicode's rules) or over 18 digits. */
static int epoch_line(Bytes s, Py_ssize_t a, Py_ssize_t b, Py_ssize_t *da, Py_ssize_t *db)
{
    if (b - a < 7 || memcmp(s + a, "<!--", 4) != 0 || memcmp(s + b - 3, "-->", 3) != 0) {
        return 0;
    }
    for (Py_ssize_t i = a; i < b; i++) {
        if (s[i] >= 0x80) {
            return -1;
        }
    }
    Py_ssize_t i = a + 4, end = b - 3;
    while (i < end && py_space(s[i])) {
        i++;
    }
    *da = i;
    if (i < end && s[i] == '-') {
        i++;
    }
    Py_ssize_t digits = i;
    while (i < end && s[i] >= '0' && s[i] <= '9') {
        i++;
    }
    if (i == digits || i - digits > 18) {
        return i == digits ? 0 : -1;
    }
    *db = i;
    while (i < end && py_space(s[i])) {
        i++;
    }
    return i == end;
}

/* Whether s[a:b] is a URL by _LINK_LINE's url group, [^\s()]*(?:\([^\s()]*\)[^\s()]*)*:
 * no whitespace, parentheses in unnested pairs. */
static int link_url(Bytes s, Py_ssize_t a, Py_ssize_t b)
{
    int open = 0;
    for (Py_ssize_t i = a; i < b;) {
        int length;
        Py_UCS4 c = code_point_at(s, i, &length);
        if (py_space(c)) {
            return 0;
        }
        if (c == '(') {
            if (open) {
                return 0;
            }
            open = 1;
        }
        else if (c == ')') {
            if (!open) {
                return 0;
            }
            open = 0;
        }
        i += length;
    }
    return !open;
}

/* _LINK_LINE.fullmatch of the stripped s[a:b]: 1 and the title's and URL's spans, or 0.
 * The title group is greedy, so the match splits at the last "](" that leaves a valid URL. */
static int link_line(Bytes s, Py_ssize_t a, Py_ssize_t b, Py_ssize_t *ta, Py_ssize_t *tb,
                     Py_ssize_t *ua, Py_ssize_t *ub)
{
    if (b - a < 4 || s[a] != '[' || s[b - 1] != ')') {
        return 0;
    }
    for (Py_ssize_t j = b - 3; j >= a + 1; j--) {
        if (s[j] == ']' && s[j + 1] == '(' && link_url(s, j + 2, b - 1)) {
            *ta = a + 1;
            *tb = j;
            *ua = j + 2;
            *ub = b - 1;
            return 1;
        }
    }
    return 0;
}

/* transforms.envelope._read_link_and_separator from pos: 1 with the title, URL and where the
 * line after the separator starts; 0 when parse_envelope must decide; -1 on error. */
static int link_and_separator(Bytes s, Py_ssize_t n, Py_ssize_t pos, PyObject **title,
                              PyObject **url, Py_ssize_t *after)
{
    Py_ssize_t a, b, after_link, ta, tb, ua, ub;
    next_line(s, n, pos, &a, &b, &after_link);
    strip_span(s, &a, &b);
    if (!link_line(s, a, b, &ta, &tb, &ua, &ub) ||
        memchr(s + ta, '\\', (size_t)(tb - ta)) != NULL) {
        return 0; /* Markdown escapes in the title: parse_envelope unescapes them */
    }
    Py_ssize_t sa, sb;
    next_line(s, n, after_link, &sa, &sb, after);
    strip_span(s, &sa, &sb);
    if (sb - sa != 6 || memcmp(s + sa, "------", 6) != 0) {
        return 0;
    }
    *title = text_of(s, ta, tb);
    *url = *title == NULL ? NULL : text_of(s, ua, ub);
    if (*url == NULL) {
        Py_CLEAR(*title);
        return -1;
    }
    return 1;
}

/* The date after _DATE_LINE's label in the stripped s[a:b] (日期[：:]\s*(.+)), or a < 0. */
static Py_ssize_t date_after_label(Bytes s, Py_ssize_t a, Py_ssize_t b)
{
    static const char label[] = "\xe6\x97\xa5\xe6\x9c\x9f"; /* 日期 */
    Py_ssize_t i = a + 6;
    if (b - a < 7 || memcmp(s + a, label, 6) != 0) {
        return -1;
    }
    if (s[i] == ':') {
        i += 1;
    }
    else if (b - i >= 3 && memcmp(s + i, "\xef\xbc\x9a", 3) == 0) { /* ： */
        i += 3;
    }
    else {
        return -1;
    }
    lstrip_span(s, &i, b);
    return i < b ? i : -1;
}

static PyObject *read_header_of(Bytes s, Py_ssize_t n)
{
    PyObject *fields = NULL, *title = NULL, *url = NULL, *when = NULL, *header = BAIL;
    const char *source_format;
    Py_ssize_t position = 0, body = 0;
    if (n >= 4 && memcmp(s, "---\n", 4) == 0) {
        Py_ssize_t close = find(s, n, "\n---", 3);
        while (close != -1 && !(close + 4 >= n || s[close + 4] == '\n')) {
            close = find(s, n, "\n---", close + 4);
        }
        if (close == -1) {
            return BAIL;
        }
        fields = front_matter(s, 4, close + 1);
        if (fields == NULL || fields == BAIL) {
            return fields;
        }
        position = close + 5 < n ? close + 5 : n;
    }
    Py_ssize_t a, b, after_first, da, db, ta, tb, ua, ub;
    next_line(s, n, skip_blank_lines(s, n, position), &a, &b, &after_first);
    strip_span(s, &a, &b);
    int epoch = epoch_line(s, a, b, &da, &db);
    int found = 0;
    if (epoch < 0) {
        goto done;
    }
    if (epoch) {
        found = link_and_separator(s, n, after_first, &title, &url, &body);
        if (found <= 0) {
            goto done;
        }
        when = text_of(s, da, db);
        source_format = fields == NULL ? "bare" : "front_matter";
    }
    else if (link_line(s, a, b, &ta, &tb, &ua, &ub)) {
        Py_ssize_t date_a, date_b, after_date;
        found = link_and_separator(s, n, position, &title, &url, &body);
        if (found <= 0) {
            goto done;
        }
        next_line(s, n, body, &date_a, &date_b, &after_date);
        strip_span(s, &date_a, &date_b);
        Py_ssize_t date = date_after_label(s, date_a, date_b);
        if (date < 0) {
            goto done;
        }
        when = text_of(s, date, date_b);
        body = after_date;
        source_format = "dated";
    }
    else if (fields != NULL) {
        body = position;
        source_format = "front_matter_html";
        header = Py_BuildValue("(sOOOOn)", source_format, fields, Py_None, Py_None, Py_None,
                               body);
        goto done;
    }
    else {
        goto done;
    }
    if (when == NULL) {
        found = -1;
        goto done;
    }
    header = Py_BuildValue("(sOOOOn)", source_format, fields == NULL ? Py_None : fields, title,
                           url, when, body);
done:
    if (found < 0) {
        header = NULL; /* an exception is set */
    }
    Py_XDECREF(fields);
    Py_XDECREF(title);
    Py_XDECREF(url);
    Py_XDECREF(when);
    return header;
}

PyObject *read_header(PyObject *module, PyObject *args)
{
    PyObject *raw;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "Sn:read_header", &raw, &start)) {
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(raw);
    if (start < 0 || start > size) {
        PyErr_SetString(PyExc_ValueError, "start is outside the bytes");
        return NULL;
    }
    Bytes s = (Bytes)PyBytes_AS_STRING(raw) + start;
    Py_ssize_t n = size - start;
    if (memchr(s, '\0', (size_t)n) != NULL || memchr(s, '\r', (size_t)n) != NULL ||
        !valid_utf8(s, n)) {
        Py_RETURN_NONE;
    }
    PyObject *header = read_header_of(s, n);
    if (header == BAIL) {
        Py_RETURN_NONE;
    }
    return header;
}
