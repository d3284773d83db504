/*
 * crowded_tag: the first tag of a body's markup with more than a limit of attributes.
 *
 * libxml2's HTML parser checks each attribute of a tag against the ones before it, so its time
 * grows with the square of one tag's attributes, or faster: 16,000 of them took it 0.7 s, 64,000
 * took 40 s, and 600,000 (an 8 MB file) had not finished after 10 minutes. transforms.body rejects such a body before parsing it. This walks
 * the markup's bytes with the HTML5 tokenizer's states for tags and attributes (libxml2's HTML
 * tokenizer follows HTML5), counting each attribute name it starts. Comments, doctypes and the
 * text of script or style elements are not set apart: a tag-like run inside them is counted as
 * a tag, so the count can only be too high, never too low. transforms.body._crowded_tag is
 * the same scan in Python; the test suite checks both agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static inline int is_tag_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\f' || c == '\r';
}

static inline int is_ascii_letter(unsigned char c)
{
    return (unsigned char)((c | 0x20) - 'a') < 26;
}

/* The attributes of the tag whose name starts at text[*at]; *at is left after the tag. */
static Py_ssize_t count_attributes(const unsigned char *text, Py_ssize_t length, Py_ssize_t *at)
{
    Py_ssize_t i = *at, count = 0;
    while (i < length && !is_tag_space(text[i]) && text[i] != '/' && text[i] != '>') {
        i++; /* the tag name */
    }
    for (;;) {
        while (i < length && (is_tag_space(text[i]) || text[i] == '/')) {
            i++; /* before an attribute name */
        }
        if (i >= length || text[i] == '>') {
            break;
        }
        count++;
        i++; /* an attribute name's first character may be '=' */
        while (i < length && !is_tag_space(text[i]) && text[i] != '/' && text[i] != '>' &&
               text[i] != '=') {
            i++;
        }
        while (i < length && is_tag_space(text[i])) {
            i++; /* after the name */
        }
        if (i >= length || text[i] != '=') {
            continue;
        }
        i++;
        while (i < length && is_tag_space(text[i])) {
            i++; /* before the value */
        }
        if (i < length && (text[i] == '"' || text[i] == '\'')) {
            const unsigned char *close = memchr(text + i + 1, text[i], (size_t)(length - i - 1));
            i = close == NULL ? length : (close - text) + 1;
        } else {
            while (i < length && !is_tag_space(text[i]) && text[i] != '>') {
                i++; /* an unquoted value */
            }
        }
    }
    *at = i;
    return count;
}

PyObject *crowded_tag(PyObject *module, PyObject *args)
{
    Py_buffer markup;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "y*n", &markup, &limit)) {
        return NULL;
    }
    const unsigned char *text = markup.buf;
    Py_ssize_t length = markup.len, i = 0, found = 0;
    while (i < length) {
        const unsigned char *open = memchr(text + i, '<', (size_t)(length - i));
        if (open == NULL) {
            break;
        }
        i = (open - text) + 1;
        if (i < length && text[i] == '/') {
            i++;
        }
        if (i >= length || !is_ascii_letter(text[i])) {
            continue;
        }
        Py_ssize_t count = count_attributes(text, length, &i);
        if (count > limit) {
            found = count;
            break;
        }
    }
    PyBuffer_Release(&markup);
    return PyLong_FromSsize_t(found);
}
