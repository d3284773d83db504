/*
 * transforms._speedups: the document-order walk of transforms.body in C.
 *
 * It walks the libxml2 tree lxml built, with the same events, frames and rules as the
 * pure-Python walk in transforms/body.py (_walk_tree_python). It places every block itself,
 * making _place's decisions in _place's order, and calls back into that module for the text
 * patterns (only when their cheap pre-tests pass), the class and id rules, share links, the
 * image rules and the rarer context rules. Text, tails and attribute values come from lxml's
 * own public C API (textOf, tailOf, attributeValue), so they are exactly the strings lxml's
 * Python API returns. The test suite checks the two walks
 * give identical output on generated HTML and on the real corpus.
 *
 * It also holds normalise_text, the C twin of transforms.text's pure-Python version, which runs
 * on every block of every article, and (in _header_reader.c) read_header, which reads a file's
 * header from its bytes for transforms.envelope, and (in _markup_scan.c) crowded_tag, which finds
 * a tag with too many attributes for libxml2 before transforms.body parses a body.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "libxml/tree.h"
#include "etree.h"

/* Element kinds, as in transforms.body: every kind above KIND_BLOCK has its subtree skipped. */
enum { KIND_INLINE, KIND_BLOCK, KIND_ANCHOR, KIND_SKIP, KIND_BREAK, KIND_IMAGE, KIND_MEDIA };

/* Tag flags. */
#define TAG_RULE 1    /* in _TAG_RULE_TAGS: its role may come from the tag itself */
#define TAG_BOLD 2    /* b, strong */
#define TAG_HEADING 4 /* h1-h6 */
#define TAG_SIMPLE 8  /* a tag rule decided by the tag alone: h1-h6, time, figcaption, figure */

#define CLOCK_CHECK_MASK 255

/* lxml's public C API, taken from lxml.etree.__pyx_capi__ (only what this walk needs). */
static struct LxmlElement *(*lx_element_factory)(struct LxmlDocument *, xmlNode *);
static PyObject *(*lx_text_of)(xmlNode *);
static PyObject *(*lx_tail_of)(xmlNode *);
static PyObject *(*lx_attribute_value)(xmlNode *, xmlAttr *);
static PyObject *(*lx_attribute_value_from_ns_name)(xmlNode *, const xmlChar *, const xmlChar *);
static xmlNode *(*lx_find_child)(xmlNode *, Py_ssize_t);
static xmlNode *(*lx_next_element)(xmlNode *);
static PyTypeObject *lx_element_type;

/* What configure() hands over from transforms.body. */
/* A small set of characters, searched in order: the first-character tests of the text rules. */
#define CHAR_SET_CAPACITY 64
typedef struct {
    Py_UCS4 items[CHAR_SET_CAPACITY];
    Py_ssize_t size;
    uint64_t low_bits; /* bit c % 64 set for each item c: most characters fail this test */
    Py_UCS4 smallest;  /* the smallest item, when size > 0 */
} CharSet;

static void char_set_add(CharSet *set, Py_UCS4 c)
{
    if (set->size == 0 || c < set->smallest) {
        set->smallest = c;
    }
    set->items[set->size++] = c;
    set->low_bits |= (uint64_t)1 << (c & 63);
}

static inline int char_set_has(const CharSet *set, Py_UCS4 c)
{
    if (!((set->low_bits >> (c & 63)) & 1)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < set->size; i++) {
        if (set->items[i] == c) {
            return 1;
        }
    }
    return 0;
}

/* The byte pairs a tuple of ASCII parts start with, for a search for any of them: bit
 * (a << 8 | b) is set when some part starts with bytes a, b, and every bit of row a when a
 * part is the one byte a. In URLs most bytes start some share hint; far fewer pairs do. */
typedef struct {
    uint64_t bits[1024];
} PairFilter;

#define RULE_ATTRIBUTE_NAMES_CAPACITY 16

typedef struct {
    PyObject *tag_kinds;       /* dict tag -> kind */
    PyObject *rule_tags;       /* frozenset */
    PyObject *bold_tags;       /* frozenset */
    PyObject *heading_tags;    /* frozenset */
    PyObject *rule_attribute_names; /* frozenset */
    const char *rule_attribute_name_list[RULE_ATTRIBUTE_NAMES_CAPACITY]; /* its items */
    Py_ssize_t rule_attribute_name_count;
    PyObject *role_body, *role_heading, *role_caption, *role_meta, *role_boilerplate;
    PyObject *reason_share_widget, *reason_media_fallback, *reason_promo;
    PyObject *reason_hidden, *reason_advertisement, *reason_related_links;
    PyObject *reason_past_article_end;
    PyObject *reason_related_stream;
    PyObject *ad_label_word; /* str: an aria-label holding it marks an advertisement */
    PyObject *discard_type; /* transforms.body.Discard */
    PyObject *text_rule, *is_caption_text, *is_meta_text, *is_bold_heading;
    PyObject *share_link, *discard_subtree, *take_image, *take_image_with;
    PyObject *context, *tag_context, *class_context, *perf_counter;
    PyObject *anchored_first_chars, *caption_first_chars, *meta_first_chars; /* frozensets */
    PyObject *cjk_substrings, *latin_stems; /* tuples of str */
    /* The three frozensets above, and the first characters of cjk_substrings, as C arrays. */
    CharSet anchored_first, caption_first, meta_first, cjk_substring_first;
    Py_ssize_t caption_max_chars, meta_max_chars, promo_max_chars;
    PyObject *share_hint_parts; /* tuple of lower-case ASCII str */
    PairFilter share_hint_pairs; /* the byte pairs share_hint_parts start with */
    /* tuples of lower-case ASCII str, for images */
    PyObject *decoration_attribute_parts, *decoration_src_parts, *placeholder_parts;
    PyObject *tracking_pixel_prefixes;
    /* transforms.body._class_context as data: tuple of (role, reason, words, word prefixes,
     * tokens, token prefixes, substrings), the last five tuples of lower-case ASCII str */
    PyObject *class_rules;
    PyObject *topic_class_prefixes;
    Py_ssize_t share_hint_chars;
    PyObject *str_fragments, *str_container, *str_share_links, *str_empty, *str_space;
    PyObject *str_paragraphs, *str_footer_reason, *str_image_since_last_block;
    PyObject *str_headings, *str_captions, *str_meta_blocks, *str_discarded, *str_image_urls;
} Config;

static Config config;
static int configured = 0;

/* function(kind, ...) with text's kind as a constant: each kind gets its own copy of an
 * always-inlined function, with PyUnicode_READ's test of the kind folded away. */
#define BY_KIND(text, function, ...)                                                        \
    (PyUnicode_KIND(text) == PyUnicode_1BYTE_KIND   ? function(PyUnicode_1BYTE_KIND, __VA_ARGS__) \
     : PyUnicode_KIND(text) == PyUnicode_2BYTE_KIND ? function(PyUnicode_2BYTE_KIND, __VA_ARGS__) \
                                                    : function(PyUnicode_4BYTE_KIND, __VA_ARGS__))

static PyObject *normalise_text(PyObject *module, PyObject *text);

/* transforms/_header_reader.c */
PyObject *read_header(PyObject *module, PyObject *args);
PyObject *crowded_tag(PyObject *module, PyObject *args);

/* Tags seen so far, by name: kind, flags and the tag as a str. Bounded; misses past the
 * bound are computed each time. */
#define TAG_CACHE_SIZE 512
#define TAG_CACHE_PROBES 8
typedef struct {
    char *name;
    int kind;
    int flags;
    PyObject *tag;
} TagInfo;
static TagInfo tag_cache[TAG_CACHE_SIZE];

/* The class rules' decision by the bytes of an element's class and id values (sites repeat
 * their class names in every article): direct-mapped by hash, an entry replaced on a clash.
 * Values longer than CLASS_CACHE_MAX_KEY bytes are decided each time. */
#define CLASS_CACHE_SIZE 4096
#define CLASS_CACHE_MAX_KEY 512
typedef struct {
    uint64_t hash;
    size_t length;
    char *key;         /* class value, NUL, id value */
    PyObject *decided; /* strong: (role, reason) or None */
} ClassDecision;
static ClassDecision class_cache[CLASS_CACHE_SIZE];

static void class_cache_clear(void)
{
    for (int i = 0; i < CLASS_CACHE_SIZE; i++) {
        PyMem_Free(class_cache[i].key);
        class_cache[i].key = NULL;
        Py_CLEAR(class_cache[i].decided);
    }
}

typedef struct {
    PyObject *role;      /* strong */
    PyObject *reason;    /* strong */
    int bold;
    int is_block;
    PyObject *container; /* strong, or NULL */
} Frame;

typedef struct {
    Frame *items;
    Py_ssize_t size;
    Py_ssize_t capacity;
} FrameStack;

static void frame_clear(Frame *frame)
{
    Py_CLEAR(frame->role);
    Py_CLEAR(frame->reason);
    Py_CLEAR(frame->container);
}

static int frames_push(FrameStack *stack, PyObject *role, PyObject *reason, int bold,
                       int is_block, PyObject *container)
{
    if (stack->size == stack->capacity) {
        Py_ssize_t capacity = stack->capacity ? stack->capacity * 2 : 64;
        Frame *items = PyMem_Realloc(stack->items, (size_t)capacity * sizeof(Frame));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        stack->items = items;
        stack->capacity = capacity;
    }
    Frame *frame = &stack->items[stack->size++];
    Py_INCREF(role);
    frame->role = role;
    Py_INCREF(reason);
    frame->reason = reason;
    frame->bold = bold;
    frame->is_block = is_block;
    Py_XINCREF(container);
    frame->container = container;
    return 0;
}

static void frames_free(FrameStack *stack)
{
    for (Py_ssize_t i = 0; i < stack->size; i++) {
        frame_clear(&stack->items[i]);
    }
    PyMem_Free(stack->items);
}

static unsigned long hash_name(const char *name)
{
    unsigned long hash = 5381;
    for (const unsigned char *c = (const unsigned char *)name; *c; c++) {
        hash = hash * 33 + *c;
    }
    return hash;
}

/* Fill info for a tag str; 0 on success. */
static int describe_tag(PyObject *tag, int *kind, int *flags)
{
    PyObject *found = PyDict_GetItemWithError(config.tag_kinds, tag);
    if (found == NULL && PyErr_Occurred()) {
        return -1;
    }
    *kind = found == NULL ? KIND_INLINE : (int)PyLong_AsLong(found);
    int rule = PySet_Contains(config.rule_tags, tag);
    int bold = PySet_Contains(config.bold_tags, tag);
    int heading = PySet_Contains(config.heading_tags, tag);
    if (rule < 0 || bold < 0 || heading < 0) {
        return -1;
    }
    const char *name = PyUnicode_AsUTF8(tag);
    if (name == NULL) {
        return -1;
    }
    int simple = heading || strcmp(name, "time") == 0 || strcmp(name, "figcaption") == 0 ||
                 strcmp(name, "figure") == 0;
    *flags = (rule ? TAG_RULE : 0) | (bold ? TAG_BOLD : 0) | (heading ? TAG_HEADING : 0) |
             (simple ? TAG_SIMPLE : 0);
    return 0;
}

/* tag with its kind and flags filled in; steals the reference (NULL passes through). */
static PyObject *described(PyObject *tag, int *kind, int *flags)
{
    if (tag == NULL || describe_tag(tag, kind, flags) < 0) {
        Py_XDECREF(tag);
        return NULL;
    }
    return tag;
}

/* The tag of an element node as lxml spells it ("{namespace}name" when namespaced), with its
 * kind and flags, cached by name for the first TAG_CACHE_PROBES slots from its hash. Returns
 * a new reference, or NULL with an exception set. */
static PyObject *element_tag(xmlNode *node, int *kind, int *flags)
{
    if (node->ns != NULL && node->ns->href != NULL) {
        return described(PyUnicode_FromFormat("{%s}%s", (const char *)node->ns->href,
                                              (const char *)node->name),
                         kind, flags);
    }
    const char *name = (const char *)node->name;
    unsigned long slot = hash_name(name) % TAG_CACHE_SIZE;
    for (unsigned long probe = 0; probe < TAG_CACHE_PROBES; probe++) {
        TagInfo *info = &tag_cache[(slot + probe) % TAG_CACHE_SIZE];
        if (info->name != NULL && strcmp(info->name, name) != 0) {
            continue;
        }
        if (info->name == NULL) {
            size_t length = strlen(name) + 1;
            char *copy = PyMem_Malloc(length);
            if (copy == NULL) {
                return PyErr_NoMemory();
            }
            PyObject *tag = described(PyUnicode_FromString(name), &info->kind, &info->flags);
            if (tag == NULL) {
                PyMem_Free(copy);
                return NULL;
            }
            memcpy(copy, name, length);
            info->name = copy;
            info->tag = tag;
        }
        *kind = info->kind;
        *flags = info->flags;
        return Py_NewRef(info->tag);
    }
    return described(PyUnicode_FromString(name), kind, flags); /* no free slot nearby */
}

/* str.isspace(), which is False for the empty string. */
static int is_space(PyObject *text)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    if (length == 0) {
        return 0;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
    for (Py_ssize_t i = 0; i < length; i++) {
        if (!Py_UNICODE_ISSPACE(PyUnicode_READ(kind, data, i))) {
            return 0;
        }
    }
    return 1;
}

typedef struct {
    PyObject *walk;
    /* The walk's lists themselves (strong): fragments and the lists blocks are placed in. */
    PyObject *fragments, *paragraphs, *headings, *captions, *meta_blocks, *discarded;
    PyObject *container;  /* mirror of walk.container, strong */
    struct LxmlDocument *doc;
    FrameStack frames;
    /* len(paragraphs) when each open <article> and <footer> started, innermost last
     * (transforms.body._walk_tree_python's ``article_starts``). */
    Py_ssize_t *article_starts;
    Py_ssize_t article_starts_size, article_starts_capacity;
} WalkState;

/* Whether node is an <article> or a <footer>: the elements _end_article_at looks at. */
static int is_article_or_footer(xmlNode *node)
{
    return node->type == XML_ELEMENT_NODE && (strcmp((const char *)node->name, "article") == 0 ||
                                              strcmp((const char *)node->name, "footer") == 0);
}

static int article_starts_push(WalkState *state)
{
    if (state->article_starts_size == state->article_starts_capacity) {
        Py_ssize_t capacity =
            state->article_starts_capacity ? state->article_starts_capacity * 2 : 8;
        Py_ssize_t *items =
            PyMem_Realloc(state->article_starts, (size_t)capacity * sizeof(Py_ssize_t));
        if (items == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        state->article_starts = items;
        state->article_starts_capacity = capacity;
    }
    state->article_starts[state->article_starts_size++] = PyList_GET_SIZE(state->paragraphs);
    return 0;
}

static PyObject *proxy(WalkState *state, xmlNode *node)
{
    return (PyObject *)lx_element_factory(state->doc, node);
}

static int set_container(WalkState *state, PyObject *container)
{
    if (PyObject_SetAttr(state->walk, config.str_container, container) < 0) {
        return -1;
    }
    Py_INCREF(container);
    Py_SETREF(state->container, container);
    return 0;
}

/* text.lower() holds needle (of needle_length), a lower-case ASCII string, from a text of a
 * constant kind once inlined. Only ASCII letters are folded here: of all other characters,
 * only U+212A (to "k") and U+0130 (to "i" and U+0307) lower-case to ASCII, and no needle used
 * here holds a "k", or an "i" followed by anything but ASCII. */
static inline __attribute__((always_inline)) int folded_contains_of_kind(
    int kind, const void *data, Py_ssize_t length, const char *needle, Py_ssize_t needle_length)
{
    for (Py_ssize_t start = 0; start + needle_length <= length; start++) {
        Py_ssize_t i = 0;
        while (i < needle_length) {
            Py_UCS4 c = PyUnicode_READ(kind, data, start + i);
            if (c >= 'A' && c <= 'Z') {
                c = c - 'A' + 'a';
            }
            if (c != (Py_UCS4)(unsigned char)needle[i]) {
                break;
            }
            i++;
        }
        if (i == needle_length) {
            return 1;
        }
    }
    return 0;
}

static int folded_contains(PyObject *text, const char *needle)
{
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    Py_ssize_t needle_length = (Py_ssize_t)strlen(needle);
    return BY_KIND(text, folded_contains_of_kind, data, length, needle, needle_length);
}

/* text (of a constant kind once inlined) holds one of substrings, a tuple of non-empty str
 * whose first characters are first: one pass over text, not one search per substring. */
static inline __attribute__((always_inline)) int holds_substring_of_kind(
    int kind, const void *data, Py_ssize_t length, PyObject *substrings, const CharSet *first)
{
    for (Py_ssize_t at = 0; at < length; at++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, at);
        if (!char_set_has(first, c)) {
            continue;
        }
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(substrings); j++) {
            PyObject *substring = PyTuple_GET_ITEM(substrings, j);
            Py_ssize_t substring_length = PyUnicode_GET_LENGTH(substring);
            if (substring_length > length - at) {
                continue;
            }
            Py_ssize_t i = 0;
            while (i < substring_length &&
                   PyUnicode_READ_CHAR(substring, i) == PyUnicode_READ(kind, data, at + i)) {
                i++;
            }
            if (i == substring_length) {
                return 1;
            }
        }
    }
    return 0;
}

static int holds_substring(PyObject *text, PyObject *substrings, const CharSet *first)
{
    if (first->size == 0 || PyUnicode_MAX_CHAR_VALUE(text) < first->smallest) {
        return 0; /* no substring can start in text: CJK substrings in Latin-1 text */
    }
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    return BY_KIND(text, holds_substring_of_kind, data, length, substrings, first);
}

/* 1 when a whole-block text rule (transforms.body._text_rule) may match: the text starts with
 * a character an anchored rule can start with, holds a CJK rule's substring, or holds a stem of
 * the Latin rules. 0 when none can, -1 on error. */
static int may_text_rule(PyObject *text)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    if (char_set_has(&config.anchored_first, PyUnicode_READ_CHAR(text, 0)) ||
        holds_substring(text, config.cjk_substrings, &config.cjk_substring_first)) {
        return 1;
    }
    if (PyUnicode_FindChar(text, 's', 0, length, 1) < 0 &&
        PyUnicode_FindChar(text, 'S', 0, length, 1) < 0) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(config.latin_stems); i++) {
        const char *stem = PyUnicode_AsUTF8(PyTuple_GET_ITEM(config.latin_stems, i));
        if (stem == NULL) {
            return -1;
        }
        if (folded_contains(text, stem)) {
            return 1;
        }
    }
    return 0;
}

/* 1 when transforms.body._is_caption_text may hold: short, and a first character its pattern
 * can start with. */
static int may_be_caption(PyObject *text)
{
    if (PyUnicode_GET_LENGTH(text) > config.caption_max_chars) {
        return 0;
    }
    return char_set_has(&config.caption_first, PyUnicode_READ_CHAR(text, 0));
}

/* 1 when transforms.body._is_meta_text may hold: its length limit and _may_be_meta_text. */
static int may_be_meta(PyObject *text)
{
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    if (length == 0 || length > config.meta_max_chars) {
        return 0;
    }
    int kind = PyUnicode_KIND(text);
    const void *data = PyUnicode_DATA(text);
#define CHAR_AT(i) ((i) < length ? PyUnicode_READ(kind, data, (i)) : (Py_UCS4)-1)
    Py_UCS4 first = CHAR_AT(0);
    Py_ssize_t end = PyUnicode_READ(kind, data, length - 1) == '\n' ? length - 1 : length;
    Py_UCS4 last = end > 0 ? PyUnicode_READ(kind, data, end - 1) : (Py_UCS4)-1;
    int may = last == ')' || last == 0xff09 ||
              PyUnicode_FindChar(text, 0x7f16, 0, length, 1) >= 0 || /* 编 */
              PyUnicode_FindChar(text, 0x7de8, 0, length, 1) >= 0 || /* 編 */
              CHAR_AT(3) == ',' || char_set_has(&config.meta_first, first) ||
              Py_UNICODE_ISSPACE(first) ||
              (Py_UNICODE_ISDECIMAL(first) &&
               (CHAR_AT(1) == '/' || CHAR_AT(2) == '/' || CHAR_AT(4) == '-' || last == 0x524d));
#undef CHAR_AT
    return may;
}

/* The truth of function(first, second), or -1 on error. */
static int call_predicate(PyObject *function, PyObject *first, PyObject *second)
{
    PyObject *result = second == NULL ? PyObject_CallOneArg(function, first)
                                      : PyObject_CallFunctionObjArgs(function, first, second,
                                                                     NULL);
    if (result == NULL) {
        return -1;
    }
    int truth = PyObject_IsTrue(result);
    Py_DECREF(result);
    return truth;
}

static int append_discard(WalkState *state, PyObject *reason, PyObject *text)
{
    PyObject *discard = PyObject_CallFunctionObjArgs(config.discard_type, reason, text, NULL);
    if (discard == NULL) {
        return -1;
    }
    int status = PyList_Append(state->discarded, discard);
    Py_DECREF(discard);
    return status;
}

/* transforms.body._place for a normalised, non-empty block: the same decisions in the same
 * order, calling the Python tests of text only when their cheap pre-tests pass. container is
 * the block's tag (walk.container, or the tag of a leaf block). */
static int place_block(WalkState *state, PyObject *role, PyObject *reason, PyObject *text,
                       int bold, PyObject *container)
{
    if (role == config.role_boilerplate) {
        int promo = reason == Py_None || reason == config.reason_promo;
        if (!promo || PyUnicode_GET_LENGTH(text) < config.promo_max_chars) {
            return append_discard(state, promo ? config.reason_promo : reason, text);
        }
    }
    PyObject *footer = PyObject_GetAttr(state->walk, config.str_footer_reason);
    if (footer == NULL) {
        return -1;
    }
    if (footer != Py_None) {
        int status = append_discard(state, footer, text);
        Py_DECREF(footer);
        return status;
    }
    Py_DECREF(footer);
    int may = may_text_rule(text);
    if (may < 0) {
        return -1;
    }
    if (may) {
        PyObject *rule = PyObject_CallOneArg(config.text_rule, text);
        if (rule == NULL) {
            return -1;
        }
        if (rule != Py_None) {
            int status = -1;
            if (!PyTuple_Check(rule) || PyTuple_GET_SIZE(rule) != 2) {
                PyErr_SetString(PyExc_TypeError, "text rules must return (reason, footer)");
            }
            else {
                PyObject *rule_reason = PyTuple_GET_ITEM(rule, 0);
                int starts_footer = PyObject_IsTrue(PyTuple_GET_ITEM(rule, 1));
                if (starts_footer >= 0 &&
                    (!starts_footer || PyObject_SetAttr(state->walk, config.str_footer_reason,
                                                        rule_reason) == 0)) {
                    status = append_discard(state, rule_reason, text);
                }
            }
            Py_DECREF(rule);
            return status;
        }
        Py_DECREF(rule);
    }
    PyObject *follows_image = PyObject_GetAttr(state->walk, config.str_image_since_last_block);
    if (follows_image == NULL) {
        return -1;
    }
    if (follows_image != Py_False &&
        PyObject_SetAttr(state->walk, config.str_image_since_last_block, Py_False) < 0) {
        Py_DECREF(follows_image);
        return -1;
    }
    PyObject *target = state->paragraphs;
    int found = 0;
    if (role == config.role_heading) {
        target = state->headings;
    }
    else if (role == config.role_caption ||
             ((found = may_be_caption(text)) > 0 &&
              (found = call_predicate(config.is_caption_text, text, follows_image)) > 0)) {
        target = state->captions;
    }
    else if (found >= 0 &&
             (role == config.role_meta || ((found = may_be_meta(text)) > 0 &&
                                           (found = call_predicate(config.is_meta_text, text,
                                                                   NULL)) > 0))) {
        target = state->meta_blocks;
    }
    else if (found >= 0 && bold &&
             (PyUnicode_CompareWithASCIIString(container, "p") == 0 ||
              PyUnicode_CompareWithASCIIString(container, "div") == 0) &&
             (found = call_predicate(config.is_bold_heading, state->walk, text)) > 0) {
        target = state->headings;
    }
    Py_DECREF(follows_image);
    if (found < 0) {
        return -1;
    }
    return PyList_Append(target, text);
}

/* Normalise a block's text and place it. container is the block's tag. */
static int place_text(WalkState *state, PyObject *text, PyObject *role, PyObject *reason,
                      int bold, PyObject *container)
{
    PyObject *normal = normalise_text(NULL, text);
    if (normal == NULL) {
        return -1;
    }
    int status = PyUnicode_GET_LENGTH(normal) == 0
                     ? 0
                     : place_block(state, role, reason, normal, bold, container);
    Py_DECREF(normal);
    return status;
}

/* transforms.body._flush: end the current block, one block per run of fragments of equal
 * role and reason; a run is bold when all its non-blank fragments are. */
static int flush_if_pending(WalkState *state)
{
    Py_ssize_t count = PyList_GET_SIZE(state->fragments);
    if (count == 0) {
        return 0;
    }
    PyObject *fragments = PyList_GetSlice(state->fragments, 0, count);
    if (fragments == NULL || PyList_SetSlice(state->fragments, 0, count, NULL) < 0) {
        Py_XDECREF(fragments);
        return -1;
    }
    int status = 0;
    Py_ssize_t start = 0;
    while (start < count && status == 0) {
        PyObject *first = PyList_GET_ITEM(fragments, start);
        PyObject *role = PyTuple_GET_ITEM(first, 1);
        PyObject *reason = PyTuple_GET_ITEM(first, 2);
        Py_ssize_t end = start + 1;
        while (end < count && PyTuple_GET_ITEM(PyList_GET_ITEM(fragments, end), 1) == role &&
               PyTuple_GET_ITEM(PyList_GET_ITEM(fragments, end), 2) == reason) {
            end++;
        }
        PyObject *text;
        int bold = 1;
        if (end == start + 1 && count == 1) {
            text = Py_NewRef(PyTuple_GET_ITEM(first, 0));
            bold = PyTuple_GET_ITEM(first, 3) == Py_True;
        }
        else {
            PyObject *pieces = PyList_New(end - start);
            if (pieces == NULL) {
                status = -1;
                break;
            }
            for (Py_ssize_t i = start; i < end; i++) {
                PyObject *fragment = PyList_GET_ITEM(fragments, i);
                PyObject *piece = PyTuple_GET_ITEM(fragment, 0);
                PyList_SET_ITEM(pieces, i - start, Py_NewRef(piece));
                if (PyTuple_GET_ITEM(fragment, 3) != Py_True && !is_space(piece)) {
                    bold = 0;
                }
            }
            text = PyUnicode_Join(config.str_empty, pieces);
            Py_DECREF(pieces);
            if (text == NULL) {
                status = -1;
                break;
            }
        }
        status = place_text(state, text, role, reason, bold, state->container);
        Py_DECREF(text);
        start = end;
    }
    Py_DECREF(fragments);
    return status;
}

/* Append (text, role, reason, bold) unless the text is empty, or whitespace that would open a
 * block. Steals the reference to text (which may be None). */
static int add_fragment(WalkState *state, PyObject *text, Frame *frame)
{
    if (text == Py_None || PyUnicode_GET_LENGTH(text) == 0 ||
        (PyList_GET_SIZE(state->fragments) == 0 && is_space(text))) {
        Py_DECREF(text);
        return 0;
    }
    PyObject *fragment = PyTuple_Pack(4, text, frame->role, frame->reason,
                                      frame->bold ? Py_True : Py_False);
    Py_DECREF(text);
    if (fragment == NULL) {
        return -1;
    }
    int status = PyList_Append(state->fragments, fragment);
    Py_DECREF(fragment);
    return status;
}

static int call_with_element(WalkState *state, PyObject *function, xmlNode *node,
                             PyObject *extra)
{
    PyObject *element = proxy(state, node);
    if (element == NULL) {
        return -1;
    }
    PyObject *result = extra == NULL
                           ? PyObject_CallFunctionObjArgs(function, state->walk, element, NULL)
                           : PyObject_CallFunctionObjArgs(function, state->walk, element, extra,
                                                          NULL);
    Py_DECREF(element);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* Unpack a (role, reason) pair into new references. */
static int unpack_pair(PyObject *pair, PyObject **role, PyObject **reason)
{
    if (!PyTuple_Check(pair) || PyTuple_GET_SIZE(pair) != 2) {
        PyErr_SetString(PyExc_TypeError, "context rules must return (role, reason)");
        return -1;
    }
    Py_SETREF(*role, Py_NewRef(PyTuple_GET_ITEM(pair, 0)));
    Py_SETREF(*reason, Py_NewRef(PyTuple_GET_ITEM(pair, 1)));
    return 0;
}

/* 1 when text[at:] starts with word, ASCII letters compared case-insensitively. */
static int ascii_word_at(const char *text, Py_ssize_t length, Py_ssize_t at, const char *word)
{
    for (; *word != '\0'; word++, at++) {
        if (at >= length) {
            return 0;
        }
        char c = text[at];
        if ((c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c) != *word) {
            return 0;
        }
    }
    return 1;
}

/* transforms.body._HIDDEN_STYLE on an ASCII style: display\s*:\s*none or
 * visibility\s*:\s*hidden anywhere, case-insensitively. */
static int hiding_style(const char *text, Py_ssize_t length)
{
    static const char *properties[][2] = {{"display", "none"}, {"visibility", "hidden"}};
    for (Py_ssize_t start = 0; start < length; start++) {
        for (size_t i = 0; i < 2; i++) {
            if (!ascii_word_at(text, length, start, properties[i][0])) {
                continue;
            }
            Py_ssize_t at = start + (Py_ssize_t)strlen(properties[i][0]);
            while (at < length && Py_UNICODE_ISSPACE((Py_UCS4)text[at])) {
                at++;
            }
            if (at >= length || text[at] != ':') {
                continue;
            }
            at++;
            while (at < length && Py_UNICODE_ISSPACE((Py_UCS4)text[at])) {
                at++;
            }
            if (ascii_word_at(text, length, at, properties[i][1])) {
                return 1;
            }
        }
    }
    return 0;
}

/* The rules of transforms.body._attribute_context for an element with a rule attribute or a
 * data-selfpromo one (and no namespaced one). Sets *decided to a new (role, reason) tuple and
 * returns 1 when a rule decides; returns 0 when none does (the class and id rules then
 * apply), 2 when only the Python rules can tell (a non-ASCII style), -1 on error. */
static int rule_attribute_context(xmlNode *node, int promo, PyObject **decided)
{
    const char *names[] = {"hidden", "style", "data-e2e", "aria-label", "data-root-share"};
    PyObject *values[5] = {NULL};
    int status = 0;
    PyObject *reason = NULL;
    for (size_t i = 0; i < 5; i++) {
        values[i] = lx_attribute_value_from_ns_name(node, NULL, (const xmlChar *)names[i]);
        if (values[i] == NULL) {
            status = -1;
            goto done;
        }
    }
    PyObject *hidden = values[0], *style = values[1], *e2e = values[2], *label = values[3];
    if (style != Py_None && !PyUnicode_IS_ASCII(style)) {
        status = hidden == Py_None ? 2 : 0;
        if (status == 0) {
            reason = config.reason_hidden;
        }
        goto done;
    }
    if (hidden != Py_None ||
        (style != Py_None && hiding_style((const char *)PyUnicode_DATA(style),
                                          PyUnicode_GET_LENGTH(style)))) {
        reason = config.reason_hidden;
        goto done;
    }
    if (e2e != Py_None && PyUnicode_CompareWithASCIIString(e2e, "advertisement") == 0) {
        reason = config.reason_advertisement;
        goto done;
    }
    if (label != Py_None) {
        int found = PyUnicode_Contains(label, config.ad_label_word);
        if (found < 0) {
            status = -1;
            goto done;
        }
        if (found) {
            reason = config.reason_advertisement;
            goto done;
        }
    }
    if (promo) {
        reason = config.reason_promo;
    }
    else if (values[4] != Py_None) {
        reason = config.reason_share_widget;
    }
done:
    for (size_t i = 0; i < 5; i++) {
        Py_XDECREF(values[i]);
    }
    if (status == 0 && reason != NULL) {
        *decided = PyTuple_Pack(2, config.role_boilerplate, reason);
        status = *decided == NULL ? -1 : 1;
    }
    return status;
}

/* 1 when one of parts (a tuple of non-empty ASCII str) occurs in text[0:length] at place
 * `at`: the comparison, once a filter has said that some part may start there. */
static int part_at(const char *text, Py_ssize_t length, Py_ssize_t at, PyObject *parts)
{
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(parts); j++) {
        PyObject *part = PyTuple_GET_ITEM(parts, j);
        const char *part_data = (const char *)PyUnicode_DATA(part);
        Py_ssize_t part_length = PyUnicode_GET_LENGTH(part);
        if (part_data[0] == text[at] && part_length <= length - at &&
            memcmp(text + at, part_data, (size_t)part_length) == 0) {
            return 1;
        }
    }
    return 0;
}

/* 1 when text[0:length] holds one of parts (a tuple of non-empty ASCII str), as Python's
 * any(part in text for part in parts): one pass over text, comparing only where some part's
 * first byte occurs. (glibc's strstr, a search per part, cost twice as much here.) */
static int bytes_hold_any(const char *text, Py_ssize_t length, PyObject *parts)
{
    uint64_t first_bytes[4] = {0, 0, 0, 0};
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(parts); j++) {
        unsigned char first = *(const unsigned char *)PyUnicode_DATA(PyTuple_GET_ITEM(parts, j));
        first_bytes[first >> 6] |= (uint64_t)1 << (first & 63);
    }
    for (Py_ssize_t at = 0; at < length; at++) {
        unsigned char byte = (unsigned char)text[at];
        if (((first_bytes[byte >> 6] >> (byte & 63)) & 1) && part_at(text, length, at, parts)) {
            return 1;
        }
    }
    return 0;
}

static void pair_filter_build(PairFilter *filter, PyObject *parts)
{
    memset(filter->bits, 0, sizeof(filter->bits));
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(parts); j++) {
        PyObject *part = PyTuple_GET_ITEM(parts, j);
        const unsigned char *data = (const unsigned char *)PyUnicode_DATA(part);
        if (PyUnicode_GET_LENGTH(part) == 1) {
            memset(filter->bits + data[0] * 4, 0xff, 4 * sizeof(uint64_t));
            continue;
        }
        unsigned pair = (unsigned)data[0] << 8 | data[1];
        filter->bits[pair >> 6] |= (uint64_t)1 << (pair & 63);
    }
}

/* bytes_hold_any, with the places to compare found by filter, built from parts: the share
 * hints' first bytes occur at most places of a URL, their first pairs at few. text[length]
 * must be readable (a NUL, say): it is the pair's second byte at the last place. */
static int bytes_hold_any_filtered(const char *text, Py_ssize_t length, PyObject *parts,
                                   const PairFilter *filter)
{
    const unsigned char *bytes = (const unsigned char *)text;
    for (Py_ssize_t at = 0; at < length; at++) {
        unsigned pair = (unsigned)bytes[at] << 8 | bytes[at + 1];
        if (((filter->bits[pair >> 6] >> (pair & 63)) & 1) && part_at(text, length, at, parts)) {
            return 1;
        }
    }
    return 0;
}

/* 1 when text[0:length] holds needle[0:needle_length] (needle_length > 0): memchr, which
 * libc vectorises, to each place the first byte occurs, memcmp there. */
static int bytes_contain(const char *text, Py_ssize_t length, const char *needle,
                         Py_ssize_t needle_length)
{
    const char *end = text + length - needle_length + 1;
    for (const char *at = text; at < end; at++) {
        at = memchr(at, needle[0], (size_t)(end - at));
        if (at == NULL) {
            return 0;
        }
        if (memcmp(at + 1, needle + 1, (size_t)(needle_length - 1)) == 0) {
            return 1;
        }
    }
    return 0;
}

/* 1 when lowered (NUL-terminated) holds one of parts, a tuple of non-empty ASCII str. A few
 * parts are searched for one at a time; many, in one pass (bytes_hold_any). */
static int holds_any(const char *lowered, PyObject *parts)
{
    Py_ssize_t length = (Py_ssize_t)strlen(lowered);
    if (PyTuple_GET_SIZE(parts) > 4) {
        return bytes_hold_any(lowered, length, parts);
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(parts); i++) {
        PyObject *part = PyTuple_GET_ITEM(parts, i);
        if (bytes_contain(lowered, length, (const char *)PyUnicode_DATA(part),
                          PyUnicode_GET_LENGTH(part))) {
            return 1;
        }
    }
    return 0;
}

/* 1 when [start, end) of text equals one of words, or starts with one of prefixes (both
 * tuples of ASCII str). */
static int run_matches(const char *text, Py_ssize_t start, Py_ssize_t end, PyObject *words,
                       PyObject *prefixes)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(words); i++) {
        PyObject *word = PyTuple_GET_ITEM(words, i);
        if (PyUnicode_GET_LENGTH(word) == end - start &&
            memcmp(text + start, PyUnicode_DATA(word), (size_t)(end - start)) == 0) {
            return 1;
        }
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(prefixes); i++) {
        PyObject *prefix = PyTuple_GET_ITEM(prefixes, i);
        if (PyUnicode_GET_LENGTH(prefix) <= end - start &&
            memcmp(text + start, PyUnicode_DATA(prefix), (size_t)PyUnicode_GET_LENGTH(prefix)) ==
                0) {
            return 1;
        }
    }
    return 0;
}

/* 1 when a run of text (split at whitespace, and at '-' and '_' too when tokens) matches. */
static int any_run_matches(const char *text, Py_ssize_t length, int tokens, PyObject *words,
                           PyObject *prefixes)
{
    if (PyTuple_GET_SIZE(words) == 0 && PyTuple_GET_SIZE(prefixes) == 0) {
        return 0;
    }
    Py_ssize_t start = -1;
    for (Py_ssize_t i = 0; i <= length; i++) {
        int separator = i == length || Py_UNICODE_ISSPACE((Py_UCS4)text[i]) ||
                        (tokens && (text[i] == '-' || text[i] == '_'));
        if (!separator && start < 0) {
            start = i;
        }
        else if (separator && start >= 0) {
            if (run_matches(text, start, i, words, prefixes)) {
                return 1;
            }
            start = -1;
        }
    }
    return 0;
}

/* Overwrite with spaces each whitespace-separated word of text that starts with one of
 * config.topic_class_prefixes (a post's category and tag classes), as _class_context drops
 * them: no class rule's word, token or substring then matches any part of one. */
static void blank_topic_words(char *text, Py_ssize_t length)
{
    Py_ssize_t start = -1;
    for (Py_ssize_t i = 0; i <= length; i++) {
        int space = i == length || Py_UNICODE_ISSPACE((Py_UCS4)text[i]);
        if (!space && start < 0) {
            start = i;
        }
        else if (space && start >= 0) {
            PyObject *prefixes = config.topic_class_prefixes;
            for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(prefixes); j++) {
                PyObject *prefix = PyTuple_GET_ITEM(prefixes, j);
                Py_ssize_t size = PyUnicode_GET_LENGTH(prefix);
                if (size <= i - start &&
                    memcmp(text + start, PyUnicode_DATA(prefix), (size_t)size) == 0) {
                    memset(text + start, ' ', (size_t)(i - start));
                    break;
                }
            }
            start = -1;
        }
    }
}

/* transforms.body._class_context on "class id" when both are ASCII: the first of
 * config.class_rules that matches, as a new (role, reason) tuple, or None. Returns NULL with
 * no exception set when a value is not ASCII (the Python rules then decide), NULL with one on
 * error. */
static PyObject *ascii_class_context(PyObject *class_value, PyObject *id_value)
{
    if (!PyUnicode_IS_ASCII(class_value) || !PyUnicode_IS_ASCII(id_value)) {
        return NULL;
    }
    Py_ssize_t class_length = PyUnicode_GET_LENGTH(class_value);
    Py_ssize_t length = class_length + 1 + PyUnicode_GET_LENGTH(id_value);
    char *text = PyMem_Malloc((size_t)length + 1);
    if (text == NULL) {
        return PyErr_NoMemory();
    }
    const char *sources[2] = {PyUnicode_DATA(class_value), PyUnicode_DATA(id_value)};
    Py_ssize_t offsets[2] = {0, class_length + 1};
    Py_ssize_t lengths[2] = {class_length, PyUnicode_GET_LENGTH(id_value)};
    for (int part = 0; part < 2; part++) {
        for (Py_ssize_t i = 0; i < lengths[part]; i++) {
            char c = sources[part][i];
            text[offsets[part] + i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
        }
    }
    text[class_length] = ' ';
    text[length] = '\0';
    blank_topic_words(text, length);
    PyObject *decided = NULL;
    for (Py_ssize_t i = 0; decided == NULL && i < PyTuple_GET_SIZE(config.class_rules); i++) {
        PyObject *rule = PyTuple_GET_ITEM(config.class_rules, i);
        if (any_run_matches(text, length, 0, PyTuple_GET_ITEM(rule, 2),
                            PyTuple_GET_ITEM(rule, 3)) ||
            any_run_matches(text, length, 1, PyTuple_GET_ITEM(rule, 4),
                            PyTuple_GET_ITEM(rule, 5)) ||
            holds_any(text, PyTuple_GET_ITEM(rule, 6))) {
            decided = PyTuple_Pack(2, PyTuple_GET_ITEM(rule, 0), PyTuple_GET_ITEM(rule, 1));
            if (decided == NULL) {
                break;
            }
        }
    }
    PyMem_Free(text);
    if (decided == NULL && !PyErr_Occurred()) {
        decided = Py_NewRef(Py_None);
    }
    return decided;
}

/* The value of an attribute as libxml2 holds it when it is one piece, which is what lxml's
 * attributeValue returns then: its one text node's content, or "" with none. NULL when it
 * is held in several nodes (lxml's value is then read the slow way). */
static const char *attribute_bytes(xmlAttr *attribute)
{
    xmlNode *child = attribute->children;
    if (child == NULL) {
        return "";
    }
    if (child->next != NULL || child->content == NULL ||
        (child->type != XML_TEXT_NODE && child->type != XML_CDATA_SECTION_NODE)) {
        return NULL;
    }
    return (const char *)child->content;
}

/* Write "class NUL id" (a missing attribute as "", as _attribute_context reads it) into key,
 * with its length and FNV-1a hash. 0 when a value is not held in one piece or the key would
 * not fit: the element's class rules are then decided without the cache. */
static int class_key(xmlAttr *class_attribute, xmlAttr *id_attribute, char *key,
                     size_t *length, uint64_t *hash)
{
    const char *class_value = class_attribute == NULL ? "" : attribute_bytes(class_attribute);
    const char *id_value = id_attribute == NULL ? "" : attribute_bytes(id_attribute);
    if (class_value == NULL || id_value == NULL) {
        return 0;
    }
    size_t class_length = strlen(class_value), id_length = strlen(id_value);
    if (class_length + 1 + id_length > CLASS_CACHE_MAX_KEY) {
        return 0;
    }
    memcpy(key, class_value, class_length);
    key[class_length] = '\0';
    memcpy(key + class_length + 1, id_value, id_length);
    *length = class_length + 1 + id_length;
    uint64_t h = 14695981039346656037ULL;
    for (size_t i = 0; i < *length; i++) {
        h = (h ^ (unsigned char)key[i]) * 1099511628211ULL;
    }
    *hash = h;
    return 1;
}

/* Remember decided for key in entry, replacing what it held (if memory runs short, the entry
 * is just left empty). */
static void class_decision_store(ClassDecision *entry, const char *key, size_t length,
                                 uint64_t hash, PyObject *decided)
{
    char *copy = PyMem_Malloc(length);
    if (copy == NULL) {
        return;
    }
    memcpy(copy, key, length);
    PyMem_Free(entry->key);
    Py_XSETREF(entry->decided, Py_NewRef(decided));
    entry->key = copy;
    entry->length = length;
    entry->hash = hash;
}

/* The attribute context of an element, as transforms.body._attribute_context decides it for
 * elements without namespaced attributes: the rule attributes (hidden, style, ...) and
 * data-selfpromo first, then the class rules on "class id". Sets *decided to a new reference
 * (None when the attributes say nothing). Returns 1 when decided here, 0 when only the Python
 * rules can decide, -1 on error. */
static int plain_attribute_context(xmlNode *node, PyObject **decided)
{
    xmlAttr *class_attribute = NULL, *id_attribute = NULL;
    int promo = 0, rule = 0;
    for (xmlAttr *attribute = node->properties; attribute != NULL; attribute = attribute->next) {
        if (attribute->ns != NULL) {
            return 0;
        }
        const char *name = (const char *)attribute->name;
        if (strcmp(name, "class") == 0) {
            if (class_attribute == NULL) {
                class_attribute = attribute;
            }
            continue;
        }
        if (strcmp(name, "id") == 0) {
            if (id_attribute == NULL) {
                id_attribute = attribute;
            }
            continue;
        }
        if (strstr(name, "data-selfpromo") != NULL) {
            promo = 1;
            continue;
        }
        for (Py_ssize_t i = 0; !rule && i < config.rule_attribute_name_count; i++) {
            rule = strcmp(name, config.rule_attribute_name_list[i]) == 0;
        }
    }
    if (promo || rule) {
        int status = rule_attribute_context(node, promo, decided);
        if (status != 0) {
            return status == 2 ? 0 : status;
        }
    }
    if (class_attribute == NULL && id_attribute == NULL) {
        *decided = Py_NewRef(Py_None);
        return 1;
    }
    ClassDecision *entry = NULL;
    uint64_t hash = 0;
    char key_bytes[CLASS_CACHE_MAX_KEY];
    size_t key_length = 0;
    if (class_key(class_attribute, id_attribute, key_bytes, &key_length, &hash)) {
        entry = &class_cache[hash & (CLASS_CACHE_SIZE - 1)];
        if (entry->key != NULL && entry->hash == hash && entry->length == key_length &&
            memcmp(entry->key, key_bytes, key_length) == 0) {
            *decided = Py_NewRef(entry->decided);
            return 1;
        }
    }
    PyObject *class_value = class_attribute == NULL
                                ? Py_NewRef(config.str_empty)
                                : lx_attribute_value(node, class_attribute);
    PyObject *id_value =
        id_attribute == NULL ? Py_NewRef(config.str_empty) : lx_attribute_value(node, id_attribute);
    PyObject *key = NULL;
    if (class_value != NULL && id_value != NULL) {
        *decided = ascii_class_context(class_value, id_value);
        if (*decided == NULL && !PyErr_Occurred()) {
            key = PyUnicode_FromFormat("%U %U", class_value, id_value);
        }
    }
    Py_XDECREF(class_value);
    Py_XDECREF(id_value);
    if (*decided == NULL) {
        if (key == NULL) {
            return -1;
        }
        *decided = PyObject_CallOneArg(config.class_context, key);
        Py_DECREF(key);
        if (*decided == NULL) {
            return -1;
        }
    }
    if (entry != NULL) {
        class_decision_store(entry, key_bytes, key_length, hash, *decided);
    }
    return 1;
}

/* A growing UTF-8 byte buffer. */
typedef struct {
    char *data;
    size_t size, capacity;
} Buffer;

static int buffer_add(Buffer *buffer, const char *text)
{
    size_t length = strlen(text);
    if (buffer->size + length > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity : 256;
        while (capacity < buffer->size + length) {
            capacity *= 2;
        }
        char *data = PyMem_Realloc(buffer->data, capacity);
        if (data == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        buffer->data = data;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->size, text, length);
    buffer->size += length;
    return 0;
}

/* Append the text of node's descendants, as lxml's tostring(method="text") gives it (text
 * and CDATA nodes, in document order). Returns 1 when done, 0 when the subtree holds a node
 * whose text only libxml2 knows how to give (an entity reference), -1 on error. */
static int add_text_content(Buffer *buffer, xmlNode *node)
{
    for (xmlNode *child = node->children; child != NULL; child = child->next) {
        if (child->type == XML_TEXT_NODE || child->type == XML_CDATA_SECTION_NODE) {
            if (child->content != NULL && buffer_add(buffer, (const char *)child->content) < 0) {
                return -1;
            }
        }
        else if (child->type == XML_ENTITY_REF_NODE) {
            return 0;
        }
        else if (child->type == XML_ELEMENT_NODE) {
            int status = add_text_content(buffer, child);
            if (status <= 0) {
                return status;
            }
        }
    }
    return 1;
}

/* Append the text of every <a> among node's descendants, in document order (an <a> inside
 * another counts again), as "".join(_text_content(a) for a in node.iter("a")) does. */
static int add_link_text(Buffer *buffer, xmlNode *node)
{
    for (xmlNode *child = node->children; child != NULL; child = child->next) {
        if (child->type == XML_ENTITY_REF_NODE) {
            return 0;
        }
        if (child->type != XML_ELEMENT_NODE) {
            continue;
        }
        if (child->ns == NULL && strcmp((const char *)child->name, "a") == 0) {
            int status = add_text_content(buffer, child);
            if (status <= 0) {
                return status;
            }
        }
        int status = add_link_text(buffer, child);
        if (status <= 0) {
            return status;
        }
    }
    return 1;
}

/* normalise_text of a buffer's UTF-8 text (a new reference), or NULL on error. */
static PyObject *normalised_buffer(Buffer *buffer)
{
    PyObject *text = PyUnicode_DecodeUTF8(buffer->data ? buffer->data : "",
                                          (Py_ssize_t)buffer->size, "strict");
    if (text == NULL) {
        return NULL;
    }
    PyObject *normal = normalise_text(NULL, text);
    Py_DECREF(text);
    return normal;
}

/* transforms.body._discard_subtree: the normalised text of node's subtree, when not empty, as
 * a discard with reason. Done here unless reason is media_fallback (Python then also takes the
 * subtree's images) or the subtree holds an entity reference. 0 when done, -1 on error. */
static int discard_subtree(WalkState *state, xmlNode *node, PyObject *reason)
{
    if (reason != config.reason_media_fallback) {
        Buffer buffer = {0};
        int status = add_text_content(&buffer, node);
        PyObject *text = status == 1 ? normalised_buffer(&buffer) : NULL;
        PyMem_Free(buffer.data);
        if (status == 1) {
            if (text == NULL) {
                return -1;
            }
            status = PyUnicode_GET_LENGTH(text) == 0 ? 0 : append_discard(state, reason, text);
            Py_DECREF(text);
            return status;
        }
        if (status < 0) {
            return -1;
        }
    }
    return call_with_element(state, config.discard_subtree, node, reason);
}

/* transforms.body._is_link_list: 1 when node has <li> children and each one's normalised text
 * is not empty and is exactly the normalised text of its links, 0 when not, 2 when only the
 * Python rule can tell, -1 on error. */
static int is_link_list(xmlNode *node)
{
    int items = 0;
    int status = 1;
    Buffer whole = {0}, links = {0};
    for (xmlNode *item = node->children; item != NULL && status == 1; item = item->next) {
        if (item->type != XML_ELEMENT_NODE || item->ns != NULL ||
            strcmp((const char *)item->name, "li") != 0) {
            continue;
        }
        items++;
        whole.size = links.size = 0;
        int whole_status = add_text_content(&whole, item);
        int links_status = whole_status == 1 ? add_link_text(&links, item) : whole_status;
        if (whole_status <= 0 || links_status <= 0) {
            status = whole_status < 0 || links_status < 0 ? -1 : 2;
            break;
        }
        PyObject *text = normalised_buffer(&whole);
        PyObject *link_text = text == NULL ? NULL : normalised_buffer(&links);
        if (link_text == NULL) {
            status = -1;
        }
        else if (PyUnicode_GET_LENGTH(text) == 0) {
            status = 0;
        }
        else {
            int same = PyUnicode_Compare(text, link_text);
            status = same == -1 && PyErr_Occurred() ? -1 : same == 0;
        }
        Py_XDECREF(text);
        Py_XDECREF(link_text);
    }
    PyMem_Free(whole.data);
    PyMem_Free(links.data);
    return status == 1 && items == 0 ? 0 : status;
}

/* transforms.body._context: the role of the text inside node given its parent's. Updates
 * *role and *reason (new references). */
static int element_context(WalkState *state, xmlNode *node, PyObject *tag, int kind, int flags,
                           PyObject **role, PyObject **reason)
{
    if (*role == config.role_boilerplate) {
        return 0;
    }
    if (node->properties != NULL) {
        PyObject *decided = NULL;
        int status = plain_attribute_context(node, &decided);
        if (status < 0) {
            return -1;
        }
        if (status == 0) {
            PyObject *element = proxy(state, node);
            if (element == NULL) {
                return -1;
            }
            PyObject *pair = PyObject_CallFunctionObjArgs(config.context, state->walk, element,
                                                          tag, *role, *reason, NULL);
            Py_DECREF(element);
            if (pair == NULL) {
                return -1;
            }
            status = unpack_pair(pair, role, reason);
            Py_DECREF(pair);
            return status;
        }
        if (decided != Py_None) {
            if (!PyTuple_Check(decided) || PyTuple_GET_SIZE(decided) != 2) {
                Py_DECREF(decided);
                PyErr_SetString(PyExc_TypeError, "class rules must return (role, reason)");
                return -1;
            }
            PyObject *decided_role = PyTuple_GET_ITEM(decided, 0); /* _attribute_role_applies */
            if ((decided_role != config.role_caption || !(flags & TAG_HEADING)) &&
                (decided_role != config.role_meta || kind == KIND_BLOCK)) {
                status = unpack_pair(decided, role, reason);
                Py_DECREF(decided);
                return status;
            }
        }
        Py_DECREF(decided);
    }
    if (!(flags & TAG_RULE)) {
        return 0;
    }
    if (flags & TAG_HEADING) {
        Py_SETREF(*role, Py_NewRef(config.role_heading));
        Py_SETREF(*reason, Py_NewRef(Py_None));
        return 0;
    }
    if (flags & TAG_SIMPLE) { /* time, figcaption, figure */
        PyObject *decided_role =
            PyUnicode_CompareWithASCIIString(tag, "time") == 0 ? config.role_meta
                                                                : config.role_caption;
        Py_SETREF(*role, Py_NewRef(decided_role));
        Py_SETREF(*reason, Py_NewRef(Py_None));
        return 0;
    }
    if (PyList_GET_SIZE(state->paragraphs) > 0 &&
        (PyUnicode_CompareWithASCIIString(tag, "i") == 0 ||
         PyUnicode_CompareWithASCIIString(tag, "em") == 0)) {
        return 0; /* italics after the first paragraph keep their parent's role */
    }
    if (PyUnicode_CompareWithASCIIString(tag, "ul") == 0 ||
        PyUnicode_CompareWithASCIIString(tag, "ol") == 0) {
        int links = is_link_list(node);
        if (links < 0) {
            return -1;
        }
        if (links == 1) {
            Py_SETREF(*role, Py_NewRef(config.role_boilerplate));
            Py_SETREF(*reason, Py_NewRef(config.reason_related_links));
        }
        if (links != 2) {
            return 0; /* any other list keeps its parent's role */
        }
    }
    PyObject *element = proxy(state, node);
    if (element == NULL) {
        return -1;
    }
    PyObject *pair = PyObject_CallFunctionObjArgs(config.tag_context, state->walk, element, tag,
                                                  *role, *reason, NULL);
    Py_DECREF(element);
    if (pair == NULL) {
        return -1;
    }
    int status = unpack_pair(pair, role, reason);
    Py_DECREF(pair);
    return status;
}

/* Narrow [*start, *end) of ASCII text to leave out surrounding whitespace, as str.strip()
 * does. */
static void ascii_strip(const char *data, Py_ssize_t *start, Py_ssize_t *end)
{
    while (*start < *end && Py_UNICODE_ISSPACE((Py_UCS4)data[*start])) {
        (*start)++;
    }
    while (*end > *start && Py_UNICODE_ISSPACE((Py_UCS4)data[*end - 1])) {
        (*end)--;
    }
}

/* 1 when an ASCII href cannot be a share link: stripped, it is empty or its first
 * share_hint_chars characters, lower-cased, hold none of the share hints (the test
 * transforms.links.share_link starts with). 0 when share_link must decide. */
static int surely_not_shared(PyObject *href)
{
    if (!PyUnicode_IS_ASCII(href)) {
        return 0;
    }
    const char *data = (const char *)PyUnicode_DATA(href);
    Py_ssize_t start = 0, end = PyUnicode_GET_LENGTH(href);
    ascii_strip(data, &start, &end);
    if (start == end) {
        return 1;
    }
    char prefix[512];
    Py_ssize_t length = end - start;
    if (length > config.share_hint_chars) {
        length = config.share_hint_chars;
    }
    for (Py_ssize_t i = 0; i < length; i++) {
        char c = data[start + i];
        prefix[i] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    prefix[length] = '\0';
    return !bytes_hold_any_filtered(prefix, length, config.share_hint_parts,
                                    &config.share_hint_pairs);
}

/* An anchor: a share link is recorded and its subtree discarded (returns KIND_SKIP); any other
 * anchor is inline text (KIND_INLINE). -1 on error. */
static int anchor_kind(WalkState *state, xmlNode *node)
{
    PyObject *href = lx_attribute_value_from_ns_name(node, NULL, (const xmlChar *)"href");
    if (href == NULL) {
        return -1;
    }
    if (href == Py_None) {
        Py_DECREF(href);
        return KIND_INLINE; /* share_link("") is None */
    }
    if (surely_not_shared(href)) {
        Py_DECREF(href);
        return KIND_INLINE;
    }
    PyObject *link = PyObject_CallOneArg(config.share_link, href);
    Py_DECREF(href);
    if (link == NULL) {
        return -1;
    }
    if (link == Py_None) {
        Py_DECREF(link);
        return KIND_INLINE;
    }
    PyObject *share_links = PyObject_GetAttr(state->walk, config.str_share_links);
    if (share_links == NULL) {
        Py_DECREF(link);
        return -1;
    }
    int status = PyList_Append(share_links, link);
    Py_DECREF(share_links);
    Py_DECREF(link);
    if (status < 0 ||
        discard_subtree(state, node, config.reason_share_widget) < 0) {
        return -1;
    }
    return KIND_SKIP;
}

/* attribute's value, or "" when node has no such attribute (a new reference). */
static PyObject *attribute_or_empty(xmlNode *node, const char *name)
{
    PyObject *value = lx_attribute_value_from_ns_name(node, NULL, (const xmlChar *)name);
    if (value == Py_None) {
        Py_DECREF(value);
        return Py_NewRef(config.str_empty);
    }
    return value;
}

/* A lower-cased, NUL-terminated copy of an ASCII str's characters [start, end), or NULL
 * with MemoryError set. Free it with PyMem_Free. */
static char *lowered_copy(PyObject *text, Py_ssize_t start, Py_ssize_t end)
{
    char *copy = PyMem_Malloc((size_t)(end - start) + 1);
    if (copy == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    const char *data = (const char *)PyUnicode_DATA(text);
    for (Py_ssize_t i = start; i < end; i++) {
        char c = data[i];
        copy[i - start] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
    }
    copy[end - start] = '\0';
    return copy;
}

/* 1 when an attribute of node (no namespace) is absent, or an ASCII value holding none of
 * parts; 0 when the Python rules must look; -1 on error. */
static int plainly_without(xmlNode *node, const char *name, PyObject *parts)
{
    PyObject *value = lx_attribute_value_from_ns_name(node, NULL, (const xmlChar *)name);
    if (value == NULL) {
        return -1;
    }
    int plain = 1;
    if (value != Py_None) {
        plain = 0;
        if (PyUnicode_IS_ASCII(value)) {
            char *lowered = lowered_copy(value, 0, PyUnicode_GET_LENGTH(value));
            plain = lowered == NULL ? -1 : !holds_any(lowered, parts);
            PyMem_Free(lowered);
        }
    }
    Py_DECREF(value);
    return plain;
}

/* transforms.body._take_image_with for the usual <img>: a class and id (its own and its
 * parent's) free of decoration words, not a 1x1 pixel, and an ASCII src that is an absolute
 * http(s) URL with a host, no brackets, no placeholder, tracking-pixel or decoration part.
 * Records the stripped src as the image and returns 1; returns 0 when the Python rules must
 * decide (srcset, lazy attributes, relative URLs, anything rarer), -1 on error. */
static int take_plain_image(WalkState *state, xmlNode *node)
{
    xmlNode *parent = node->parent;
    xmlNode *owners[2] = {node,
                          parent != NULL && parent->type == XML_ELEMENT_NODE ? parent : NULL};
    for (int i = 0; i < 2; i++) {
        for (int j = 0; j < 2 && owners[i] != NULL; j++) {
            int plain = plainly_without(owners[i], j == 0 ? "class" : "id",
                                        config.decoration_attribute_parts);
            if (plain <= 0) {
                return plain;
            }
        }
    }
    PyObject *width = lx_attribute_value_from_ns_name(node, NULL, (const xmlChar *)"width");
    if (width == NULL) {
        return -1;
    }
    int pixel = 0;
    if (width != Py_None && PyUnicode_CompareWithASCIIString(width, "1") == 0) {
        PyObject *height = lx_attribute_value_from_ns_name(node, NULL, (const xmlChar *)"height");
        if (height == NULL) {
            Py_DECREF(width);
            return -1;
        }
        pixel = height != Py_None && PyUnicode_CompareWithASCIIString(height, "1") == 0;
        Py_DECREF(height);
    }
    Py_DECREF(width);
    if (pixel) {
        return 0;
    }
    PyObject *src = lx_attribute_value_from_ns_name(node, NULL, (const xmlChar *)"src");
    if (src == NULL || src == Py_None || !PyUnicode_IS_ASCII(src)) {
        int status = src == NULL ? -1 : 0;
        Py_XDECREF(src);
        return status;
    }
    const char *data = (const char *)PyUnicode_DATA(src);
    Py_ssize_t start = 0, end = PyUnicode_GET_LENGTH(src);
    ascii_strip(data, &start, &end);
    char *lowered = start < end ? lowered_copy(src, start, end) : NULL;
    if (lowered == NULL) {
        Py_DECREF(src);
        return PyErr_Occurred() ? -1 : 0;
    }
    Py_ssize_t host = strncmp(lowered, "http://", 7) == 0    ? 7
                      : strncmp(lowered, "https://", 8) == 0 ? 8
                                                             : 0;
    int plain = host > 0 && lowered[host] != '\0' && strchr("/?#", lowered[host]) == NULL &&
                !Py_UNICODE_ISSPACE((Py_UCS4)lowered[host]) && strpbrk(lowered, "[]") == NULL &&
                !holds_any(lowered, config.placeholder_parts) &&
                !holds_any(lowered, config.decoration_src_parts);
    for (Py_ssize_t i = 0; plain && i < PyTuple_GET_SIZE(config.tracking_pixel_prefixes); i++) {
        PyObject *prefix = PyTuple_GET_ITEM(config.tracking_pixel_prefixes, i);
        plain = strncmp(lowered + host, (const char *)PyUnicode_DATA(prefix),
                        (size_t)PyUnicode_GET_LENGTH(prefix)) != 0;
    }
    PyMem_Free(lowered);
    if (!plain) {
        Py_DECREF(src);
        return 0;
    }
    PyObject *url = PyUnicode_Substring(src, start, end);
    Py_DECREF(src);
    if (url == NULL) {
        return -1;
    }
    PyObject *images = PyObject_GetAttr(state->walk, config.str_image_urls);
    int status = images == NULL ? -1 : PyList_Append(images, url);
    Py_XDECREF(images);
    Py_DECREF(url);
    if (status < 0 ||
        PyObject_SetAttr(state->walk, config.str_image_since_last_block, Py_True) < 0) {
        return -1;
    }
    return 1;
}

/* Whether an image belongs to the article (transforms.body._walk_tree_python): not inside
 * boilerplate (its parent's frame, under the image's own) and not past a footer start.
 * Returns 1 or 0, -1 on error. */
static int image_in_article(WalkState *state)
{
    if (state->frames.items[state->frames.size - 2].role == config.role_boilerplate) {
        return 0;
    }
    PyObject *footer = PyObject_GetAttr(state->walk, config.str_footer_reason);
    if (footer == NULL) {
        return -1;
    }
    int in_article = footer == Py_None;
    Py_DECREF(footer);
    return in_article;
}

/* transforms.body._take_image: the element's attributes as a dict and the class and id of it
 * and its parent, handed to _take_image_with. Namespaced attributes go the Python way. */
static int take_image(WalkState *state, xmlNode *node)
{
    for (xmlAttr *attribute = node->properties; attribute != NULL; attribute = attribute->next) {
        if (attribute->ns != NULL) {
            return call_with_element(state, config.take_image, node, NULL);
        }
    }
    int plain = take_plain_image(state, node);
    if (plain != 0) {
        return plain < 0 ? -1 : 0;
    }
    PyObject *attributes = PyDict_New();
    if (attributes == NULL) {
        return -1;
    }
    for (xmlAttr *attribute = node->properties; attribute != NULL; attribute = attribute->next) {
        PyObject *name = PyUnicode_FromString((const char *)attribute->name);
        PyObject *value = name == NULL ? NULL : lx_attribute_value(node, attribute);
        int status = value == NULL ? -1 : PyDict_SetItem(attributes, name, value);
        Py_XDECREF(name);
        Py_XDECREF(value);
        if (status < 0) {
            Py_DECREF(attributes);
            return -1;
        }
    }
    xmlNode *parent = node->parent;
    int has_parent = parent != NULL && parent->type == XML_ELEMENT_NODE;
    PyObject *parts[4] = {attribute_or_empty(node, "class"), attribute_or_empty(node, "id"),
                          has_parent ? attribute_or_empty(parent, "class") : NULL,
                          has_parent ? attribute_or_empty(parent, "id") : NULL};
    PyObject *context = NULL;
    if (parts[0] != NULL && parts[1] != NULL && (!has_parent || (parts[2] && parts[3]))) {
        context = has_parent ? PyUnicode_FromFormat("%U %U %U %U", parts[0], parts[1],
                                                    parts[2], parts[3])
                             : PyUnicode_FromFormat("%U %U", parts[0], parts[1]);
    }
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(parts[i]);
    }
    PyObject *result = context == NULL
                           ? NULL
                           : PyObject_CallFunctionObjArgs(config.take_image_with, state->walk,
                                                          attributes, context, NULL);
    Py_XDECREF(context);
    Py_DECREF(attributes);
    if (result == NULL) {
        return -1;
    }
    Py_DECREF(result);
    return 0;
}

/* transforms.body._start_footer_at: from this block on, text is discarded with reason and
 * no image is the article's, unless an earlier footer start already decided so. */
static int start_footer_at(WalkState *state, PyObject *reason)
{
    PyObject *footer = PyObject_GetAttr(state->walk, config.str_footer_reason);
    if (footer == NULL) {
        return -1;
    }
    int status = footer == Py_None
                     ? PyObject_SetAttr(state->walk, config.str_footer_reason, reason)
                     : 0;
    Py_DECREF(footer);
    return status;
}

/* Handle an element's start. Returns 1 to descend into its children, 0 to skip them (the
 * element is then ended at once), -1 on error. */
static int start_element(WalkState *state, xmlNode *node)
{
    int kind = KIND_SKIP;
    int flags = 0;
    PyObject *tag = NULL;
    if (node->type == XML_ELEMENT_NODE) {
        tag = element_tag(node, &kind, &flags);
        if (tag == NULL) {
            return -1;
        }
    }
    if (kind == KIND_ANCHOR) {
        kind = anchor_kind(state, node);
        if (kind < 0) {
            Py_DECREF(tag);
            return -1;
        }
    }
    if (kind > KIND_BLOCK) {
        Py_XDECREF(tag);
        if (frames_push(&state->frames, config.role_body, Py_None, 0, 0, NULL) < 0) {
            return -1;
        }
        if (kind == KIND_BREAK) {
            return flush_if_pending(state) < 0 ? -1 : 0;
        }
        if (kind == KIND_IMAGE) {
            int in_article = image_in_article(state);
            if (in_article <= 0) {
                return in_article;
            }
            return take_image(state, node) < 0 ? -1 : 0;
        }
        if (kind == KIND_MEDIA) {
            return discard_subtree(state, node, config.reason_media_fallback) < 0 ? -1 : 0;
        }
        return 0;
    }
    Frame *top = &state->frames.items[state->frames.size - 1];
    PyObject *role = Py_NewRef(top->role);
    PyObject *reason = Py_NewRef(top->reason);
    int bold = top->bold;
    int status = 1;
    if ((flags & TAG_RULE) || node->properties != NULL) {
        if (element_context(state, node, tag, kind, flags, &role, &reason) < 0) {
            status = -1;
            goto done;
        }
    }
    if (flags & TAG_BOLD) {
        bold = 1;
    }
    if (kind == KIND_BLOCK) {
        if (flush_if_pending(state) < 0 ||
            (reason == config.reason_related_stream && start_footer_at(state, reason) < 0) ||
            (is_article_or_footer(node) && article_starts_push(state) < 0)) {
            status = -1;
            goto done;
        }
        if (lx_find_child(node, 0) == NULL) {
            PyObject *text = lx_text_of(node);
            if (text == NULL) {
                status = -1;
                goto done;
            }
            if (text != Py_None && PyUnicode_GET_LENGTH(text) > 0 &&
                place_text(state, text, role, reason, bold, tag) < 0) {
                Py_DECREF(text);
                status = -1;
                goto done;
            }
            Py_DECREF(text);
            status = frames_push(&state->frames, config.role_body, Py_None, 0, 0, NULL) < 0
                         ? -1
                         : 0;
            goto done;
        }
        if (frames_push(&state->frames, role, reason, bold, 1, state->container) < 0 ||
            set_container(state, tag) < 0) {
            status = -1;
            goto done;
        }
    }
    else if (frames_push(&state->frames, role, reason, bold, 0, NULL) < 0) {
        status = -1;
        goto done;
    }
    PyObject *text = lx_text_of(node);
    if (text == NULL ||
        add_fragment(state, text, &state->frames.items[state->frames.size - 1]) < 0) {
        status = -1;
    }
done:
    Py_XDECREF(tag);
    Py_DECREF(role);
    Py_DECREF(reason);
    return status;
}

/* Whether node, an <article> or a <footer>, is an <article>'s own <footer>. */
static int is_article_footer(xmlNode *node)
{
    xmlNode *parent = node->parent;
    return strcmp((const char *)node->name, "footer") == 0 && parent != NULL &&
           parent->type == XML_ELEMENT_NODE && strcmp((const char *)parent->name, "article") == 0;
}

static int end_element(WalkState *state, xmlNode *node)
{
    Frame frame = state->frames.items[--state->frames.size];
    int status = 0;
    if (frame.is_block) {
        if (flush_if_pending(state) < 0 || set_container(state, frame.container) < 0) {
            status = -1;
        }
    }
    if (status == 0 && state->article_starts_size > 0 && is_article_or_footer(node)) {
        Py_ssize_t started = state->article_starts[--state->article_starts_size];
        Frame *outer = &state->frames.items[state->frames.size - 1];
        if (outer->role != config.role_boilerplate && is_article_footer(node) &&
            state->article_starts_size > 0 &&
            started > state->article_starts[state->article_starts_size - 1]) {
            /* The article had paragraphs before its footer: what follows the footer inside
             * the article is the page around it (transforms.body._end_article_at). */
            Py_SETREF(outer->role, Py_NewRef(config.role_boilerplate));
            Py_SETREF(outer->reason, Py_NewRef(config.reason_past_article_end));
        }
    }
    if (status == 0) {
        PyObject *tail = lx_tail_of(node);
        if (tail == NULL ||
            add_fragment(state, tail, &state->frames.items[state->frames.size - 1]) < 0) {
            status = -1;
        }
    }
    frame_clear(&frame);
    return status;
}

/* Count one parser event; every 256, compare the clock with the deadline. Returns 1 when the
 * deadline has passed, 0 otherwise, -1 on error. */
static int clock_passed(unsigned long *count, double deadline)
{
    *count += 1;
    if (*count & CLOCK_CHECK_MASK) {
        return 0;
    }
    PyObject *now = PyObject_CallNoArgs(config.perf_counter);
    if (now == NULL) {
        return -1;
    }
    double seconds = PyFloat_AsDouble(now);
    Py_DECREF(now);
    if (seconds == -1.0 && PyErr_Occurred()) {
        return -1;
    }
    return seconds > deadline;
}

static PyObject *walk_tree(PyObject *module, PyObject *args)
{
    PyObject *walk, *root;
    double deadline;
    if (!configured) {
        PyErr_SetString(PyExc_RuntimeError, "transforms._speedups.configure() was not called");
        return NULL;
    }
    if (!PyArg_ParseTuple(args, "OO!d", &walk, lx_element_type, &root, &deadline)) {
        return NULL;
    }
    WalkState state = {0};
    state.walk = walk;
    state.doc = ((struct LxmlElement *)root)->_doc;
    xmlNode *top = ((struct LxmlElement *)root)->_c_node;
    PyObject **lists[] = {&state.fragments, &state.headings, &state.captions,
                          &state.meta_blocks, &state.paragraphs, &state.discarded};
    PyObject *list_names[] = {config.str_fragments, config.str_headings, config.str_captions,
                              config.str_meta_blocks, config.str_paragraphs,
                              config.str_discarded};
    PyObject *result = NULL;
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        *lists[i] = PyObject_GetAttr(walk, list_names[i]);
        if (*lists[i] == NULL) {
            goto done;
        }
        if (!PyList_CheckExact(*lists[i])) {
            PyErr_Format(PyExc_TypeError, "walk.%U must be a list", list_names[i]);
            goto done;
        }
    }
    state.container = PyObject_GetAttr(walk, config.str_container);
    if (state.container == NULL) {
        goto done;
    }
    if (!PyUnicode_Check(state.container)) {
        PyErr_SetString(PyExc_TypeError, "walk.container must be a str");
        goto done;
    }
    if (frames_push(&state.frames, config.role_body, Py_None, 0, 0, state.container) < 0) {
        goto done;
    }
    unsigned long count = 0;
    xmlNode *node = top;
    int starting = 1;
    for (;;) {
        int passed = clock_passed(&count, deadline);
        if (passed < 0) {
            goto done;
        }
        if (passed) {
            result = PyLong_FromUnsignedLong(count);
            goto done;
        }
        if (starting) {
            int descend = start_element(&state, node);
            if (descend < 0) {
                goto done;
            }
            xmlNode *child = descend ? lx_find_child(node, 0) : NULL;
            if (child != NULL) {
                node = child;
            }
            else {
                starting = 0;
            }
            continue;
        }
        if (end_element(&state, node) < 0) {
            goto done;
        }
        if (node == top) {
            break;
        }
        xmlNode *next = lx_next_element(node);
        if (next != NULL) {
            node = next;
            starting = 1;
        }
        else {
            node = node->parent;
        }
    }
    if (flush_if_pending(&state) < 0) {
        goto done;
    }
    result = Py_NewRef(Py_None);
done:
    frames_free(&state.frames);
    PyMem_Free(state.article_starts);
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) {
        Py_XDECREF(*lists[i]);
    }
    Py_XDECREF(state.container);
    return result;
}

static PyObject *unicodedata_normalize;
static PyObject *str_nfc;

/* Ranges of code points that are NFC_QC=Yes with combining class 0 (UAX #15), chosen to cover
 * the text articles are mostly made of: Latin, general punctuation, CJK punctuation, kana, CJK
 * ideographs, Hangul syllables and full-width forms. By the quick-check algorithm a string of
 * these only is already in NFC, so normalise_text skips unicodedata.normalize for it.
 * tests/test_speedups.py checks every code point listed against unicodedata. */
static const Py_UCS4 nfc_inert_ranges[][2] = {
    {0x309b, 0xa66e}, {0x0000, 0x02ff}, {0x3000, 0x3029}, {0x2002, 0x20cf},
    {0xabee, 0xd7ff}, {0xfe30, 0xffff},
}; /* most frequent first: CJK ideographs, then Latin */

static inline int nfc_inert(Py_UCS4 c)
{
    for (size_t i = 0; i < sizeof(nfc_inert_ranges) / sizeof(nfc_inert_ranges[0]); i++) {
        if (c >= nfc_inert_ranges[i][0] && c <= nfc_inert_ranges[i][1]) {
            return 1;
        }
    }
    return 0;
}

enum { CHAR_OTHER, CHAR_SPACE, CHAR_ZERO_WIDTH };

/* Whether c is whitespace (as str.split() sees it), a zero-width character normalise_text
 * drops, or neither. Nothing above U+3000 is whitespace, and only U+FEFF there is zero-width:
 * most CJK text is decided by one comparison. */
static inline int char_class(Py_UCS4 c)
{
    if (c < 128) {
        return Py_UNICODE_ISSPACE(c) ? CHAR_SPACE : CHAR_OTHER;
    }
    if (c > 0x3000) {
        return c == 0xfeff ? CHAR_ZERO_WIDTH : CHAR_OTHER;
    }
    if (c == 0x200b || c == 0x200c || c == 0x200d || c == 0x2060 || c == 0xad) {
        return CHAR_ZERO_WIDTH;
    }
    return Py_UNICODE_ISSPACE(c) ? CHAR_SPACE : CHAR_OTHER;
}

/* Whether c is one of the characters most text is made of, which normalise_text keeps as they
 * are and which need no NFC: printable ASCII but space, and (in text wider than Latin-1) the
 * CJK ideographs U+4E00-U+9FFF. The scans below take them in two comparisons. */
static inline __attribute__((always_inline)) int plain_char(int kind, Py_UCS4 c)
{
    return (Py_UCS4)(c - 0x21) <= 0x7e - 0x21 ||
           (kind != PyUnicode_1BYTE_KIND && (Py_UCS4)(c - 0x4e00) <= 0x9fff - 0x4e00);
}

typedef struct {
    Py_ssize_t size;  /* characters of the result */
    Py_UCS4 maxchar;  /* largest character of the result */
    int changed;      /* the result differs from the text */
    int not_inert;    /* the text holds a character outside nfc_inert_ranges */
} TextScan;

/* One pass over text (of a constant kind once inlined): the size and widest character of its
 * normalised form, and whether it needs NFC first (only looked at when check_nfc). */
static inline __attribute__((always_inline)) void scan_text_of_kind(int kind, const void *data,
                                                                     Py_ssize_t length,
                                                                     int check_nfc,
                                                                     TextScan *scan)
{
    Py_ssize_t size = 0;
    Py_UCS4 maxchar = 0;
    int started = 0, pending_space = 0, changed = 0, not_inert = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        if (plain_char(kind, c)) {
            size += 1 + pending_space;
            maxchar = maxchar > c ? maxchar : c; /* c > ' ', the pending space */
            pending_space = 0;
            started = 1;
            continue;
        }
        if (check_nfc && !nfc_inert(c)) {
            not_inert = 1;
        }
        int class = char_class(c);
        if (class == CHAR_ZERO_WIDTH) {
            changed = 1;
            continue;
        }
        if (class == CHAR_SPACE) {
            if (c != ' ' || pending_space || !started) {
                changed = 1;
            }
            pending_space = started;
            continue;
        }
        if (pending_space) {
            size++;
            maxchar = maxchar > ' ' ? maxchar : ' ';
            pending_space = 0;
        }
        size++;
        maxchar = maxchar > c ? maxchar : c;
        started = 1;
    }
    scan->size = size;
    scan->maxchar = maxchar;
    scan->changed = changed || pending_space; /* pending_space: trailing whitespace */
    scan->not_inert = not_inert;
}

static void scan_text(PyObject *text, int check_nfc, TextScan *scan)
{
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    BY_KIND(text, scan_text_of_kind, data, length, check_nfc, scan);
}

/* Write text's normalised form (as measured by scan_text) into result. */
static inline __attribute__((always_inline)) void write_text_of_kind(int kind, const void *data,
                                                                      Py_ssize_t length,
                                                                      PyObject *result)
{
    int result_kind = PyUnicode_KIND(result);
    void *result_data = PyUnicode_DATA(result);
    Py_ssize_t written = 0;
    int started = 0, pending_space = 0;
    for (Py_ssize_t i = 0; i < length; i++) {
        Py_UCS4 c = PyUnicode_READ(kind, data, i);
        int class = plain_char(kind, c) ? CHAR_OTHER : char_class(c);
        if (class == CHAR_ZERO_WIDTH) {
            continue;
        }
        if (class == CHAR_SPACE) {
            pending_space = started;
            continue;
        }
        if (pending_space) {
            PyUnicode_WRITE(result_kind, result_data, written++, ' ');
            pending_space = 0;
        }
        PyUnicode_WRITE(result_kind, result_data, written++, c);
        started = 1;
    }
}

static void write_text(PyObject *text, PyObject *result)
{
    const void *data = PyUnicode_DATA(text);
    Py_ssize_t length = PyUnicode_GET_LENGTH(text);
    BY_KIND(text, write_text_of_kind, data, length, result);
}

/* transforms.text.normalise_text: NFC, zero-width characters removed, every whitespace run
 * (as str.split() sees whitespace) to one space, no space at either end. Text of inert
 * characters only (nfc_inert_ranges) is already NFC; other text goes through
 * unicodedata.normalize first. */
static PyObject *normalise_text(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_Format(PyExc_TypeError, "normalise_text() needs a str, not %.80s",
                     Py_TYPE(text)->tp_name);
        return NULL;
    }
    TextScan scan;
    PyObject *source = Py_NewRef(text);
    /* Every Latin-1 character is inert: only wider text needs the NFC check. */
    scan_text(source, PyUnicode_KIND(source) != PyUnicode_1BYTE_KIND, &scan);
    if (scan.not_inert) {
        Py_SETREF(source,
                  PyObject_CallFunctionObjArgs(unicodedata_normalize, str_nfc, text, NULL));
        if (source == NULL) {
            return NULL;
        }
        scan_text(source, 0, &scan);
    }
    if (!scan.changed) {
        return source;
    }
    PyObject *result = PyUnicode_New(scan.size, scan.maxchar);
    if (result != NULL) {
        write_text(source, result);
    }
    Py_DECREF(source);
    return result;
}

static int take(PyObject *kwargs, const char *name, PyObject **slot)
{
    PyObject *value = PyDict_GetItemString(kwargs, name);
    if (value == NULL) {
        PyErr_Format(PyExc_TypeError, "configure() needs %s", name);
        return -1;
    }
    Py_INCREF(value);
    Py_XSETREF(*slot, value);
    return 0;
}

/* 1 when parts is a tuple of non-empty lower-case ASCII str. */
static int lower_ascii_tuple(PyObject *parts)
{
    if (!PyTuple_Check(parts)) {
        return 0;
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(parts); i++) {
        PyObject *part = PyTuple_GET_ITEM(parts, i);
        if (!PyUnicode_Check(part) || !PyUnicode_IS_ASCII(part) ||
            PyUnicode_GET_LENGTH(part) == 0) {
            return 0;
        }
        const char *text = (const char *)PyUnicode_DATA(part);
        for (Py_ssize_t j = 0; j < PyUnicode_GET_LENGTH(part); j++) {
            if (text[j] >= 'A' && text[j] <= 'Z') {
                return 0;
            }
        }
    }
    return 1;
}

/* Copy a frozenset of one-character str into a CharSet; -1 with TypeError if it is not one. */
static int char_set_from(PyObject *characters, CharSet *set)
{
    set->size = 0;
    set->low_bits = 0;
    if (PySet_GET_SIZE(characters) > CHAR_SET_CAPACITY) {
        PyErr_SetString(PyExc_TypeError, "configure(): a character set is too large");
        return -1;
    }
    PyObject *iterator = PyObject_GetIter(characters);
    if (iterator == NULL) {
        return -1;
    }
    PyObject *item;
    while ((item = PyIter_Next(iterator)) != NULL) {
        int ok = PyUnicode_Check(item) && PyUnicode_GET_LENGTH(item) == 1 &&
                 set->size < CHAR_SET_CAPACITY;
        if (ok) {
            char_set_add(set, PyUnicode_READ_CHAR(item, 0));
        }
        Py_DECREF(item);
        if (!ok) {
            Py_DECREF(iterator);
            PyErr_SetString(PyExc_TypeError,
                            "configure(): character sets must hold one-character str");
            return -1;
        }
    }
    Py_DECREF(iterator);
    return PyErr_Occurred() ? -1 : 0;
}

static PyObject *configure(PyObject *module, PyObject *args, PyObject *kwargs)
{
    if (kwargs == NULL || PyTuple_GET_SIZE(args) != 0) {
        PyErr_SetString(PyExc_TypeError, "configure() takes keyword arguments only");
        return NULL;
    }
    static PyObject *caption_max, *meta_max, *promo_max, *hint_chars;
    static const char *names[] = {
        "tag_kinds", "rule_tags", "bold_tags", "heading_tags", "rule_attribute_names",
        "role_body", "role_heading", "role_caption", "role_meta", "role_boilerplate",
        "reason_share_widget", "reason_media_fallback", "reason_promo", "discard_type",
        "text_rule", "is_caption_text", "is_meta_text", "is_bold_heading",
        "share_link", "discard_subtree", "take_image", "take_image_with", "context",
        "tag_context",
        "class_context", "perf_counter", "anchored_first_chars",
        "caption_first_chars", "meta_first_chars", "cjk_substrings", "latin_stems",
        "caption_max_chars", "meta_max_chars", "share_hint_parts", "share_hint_chars",
        "reason_hidden", "reason_advertisement", "ad_label_word", "reason_related_links",
        "decoration_attribute_parts", "decoration_src_parts", "placeholder_parts",
        "tracking_pixel_prefixes", "class_rules", "topic_class_prefixes",
        "reason_past_article_end", "reason_related_stream", "promo_max_chars",
    };
    PyObject **slots[] = {
        &config.tag_kinds, &config.rule_tags, &config.bold_tags, &config.heading_tags,
        &config.rule_attribute_names, &config.role_body, &config.role_heading,
        &config.role_caption, &config.role_meta, &config.role_boilerplate,
        &config.reason_share_widget, &config.reason_media_fallback, &config.reason_promo,
        &config.discard_type, &config.text_rule, &config.is_caption_text,
        &config.is_meta_text, &config.is_bold_heading, &config.share_link,
        &config.discard_subtree, &config.take_image, &config.take_image_with,
        &config.context, &config.tag_context,
        &config.class_context, &config.perf_counter, &config.anchored_first_chars,
        &config.caption_first_chars, &config.meta_first_chars, &config.cjk_substrings,
        &config.latin_stems, &caption_max, &meta_max, &config.share_hint_parts, &hint_chars,
        &config.reason_hidden, &config.reason_advertisement, &config.ad_label_word,
        &config.reason_related_links, &config.decoration_attribute_parts,
        &config.decoration_src_parts, &config.placeholder_parts, &config.tracking_pixel_prefixes,
        &config.class_rules, &config.topic_class_prefixes, &config.reason_past_article_end,
        &config.reason_related_stream, &promo_max,
    };
    size_t count = sizeof(names) / sizeof(names[0]);
    if (PyDict_GET_SIZE(kwargs) != (Py_ssize_t)count) {
        PyErr_Format(PyExc_TypeError, "configure() takes exactly %zu keyword arguments", count);
        return NULL;
    }
    for (size_t i = 0; i < count; i++) {
        if (take(kwargs, names[i], slots[i]) < 0) {
            return NULL;
        }
    }
    if (!PyDict_Check(config.tag_kinds) || !PyAnySet_Check(config.rule_tags) ||
        !PyAnySet_Check(config.bold_tags) || !PyAnySet_Check(config.heading_tags) ||
        !PyAnySet_Check(config.rule_attribute_names) ||
        !PyAnySet_Check(config.anchored_first_chars) ||
        !PyAnySet_Check(config.caption_first_chars) || !PyAnySet_Check(config.meta_first_chars) ||
        !PyTuple_Check(config.cjk_substrings) || !PyTuple_Check(config.latin_stems)) {
        PyErr_SetString(PyExc_TypeError,
                        "configure(): tag_kinds must be a dict, tag and character sets sets, "
                        "substrings and stems tuples");
        return NULL;
    }
    if (char_set_from(config.anchored_first_chars, &config.anchored_first) < 0 ||
        char_set_from(config.caption_first_chars, &config.caption_first) < 0 ||
        char_set_from(config.meta_first_chars, &config.meta_first) < 0) {
        return NULL;
    }
    config.cjk_substring_first.size = 0;
    config.cjk_substring_first.low_bits = 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(config.cjk_substrings); i++) {
        PyObject *substring = PyTuple_GET_ITEM(config.cjk_substrings, i);
        if (!PyUnicode_Check(substring) || PyUnicode_GET_LENGTH(substring) == 0 ||
            config.cjk_substring_first.size == CHAR_SET_CAPACITY) {
            PyErr_SetString(PyExc_TypeError, "configure(): cjk_substrings must be a few "
                                             "non-empty str");
            return NULL;
        }
        Py_UCS4 first = PyUnicode_READ_CHAR(substring, 0);
        if (!char_set_has(&config.cjk_substring_first, first)) {
            char_set_add(&config.cjk_substring_first, first);
        }
    }
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(config.latin_stems); i++) {
        PyObject *stem = PyTuple_GET_ITEM(config.latin_stems, i);
        if (!PyUnicode_Check(stem) || !PyUnicode_IS_ASCII(stem)) {
            PyErr_SetString(PyExc_TypeError, "configure(): latin_stems must be ASCII str");
            return NULL;
        }
    }
    PyObject *part_tuples[] = {config.share_hint_parts, config.decoration_attribute_parts,
                               config.decoration_src_parts, config.placeholder_parts,
                               config.tracking_pixel_prefixes, config.topic_class_prefixes};
    for (size_t t = 0; t < sizeof(part_tuples) / sizeof(part_tuples[0]); t++) {
        if (!lower_ascii_tuple(part_tuples[t])) {
            PyErr_SetString(PyExc_TypeError, "configure(): share hints, decoration and "
                                             "placeholder parts, tracking-pixel and topic "
                                             "class prefixes must be tuples of lower-case "
                                             "ASCII str");
            return NULL;
        }
    }
    int rules_ok = PyTuple_Check(config.class_rules);
    for (Py_ssize_t i = 0; rules_ok && i < PyTuple_GET_SIZE(config.class_rules); i++) {
        PyObject *rule = PyTuple_GET_ITEM(config.class_rules, i);
        rules_ok = PyTuple_Check(rule) && PyTuple_GET_SIZE(rule) == 7;
        for (Py_ssize_t j = 2; rules_ok && j < 7; j++) {
            rules_ok = lower_ascii_tuple(PyTuple_GET_ITEM(rule, j));
        }
    }
    if (!rules_ok) {
        PyErr_SetString(PyExc_TypeError, "configure(): class_rules must be tuples of (role, "
                                         "reason, then five tuples of lower-case ASCII str)");
        return NULL;
    }
    pair_filter_build(&config.share_hint_pairs, config.share_hint_parts);
    config.share_hint_chars = PyLong_AsSsize_t(hint_chars);
    if (config.share_hint_chars < 0 || config.share_hint_chars > 500) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ValueError, "configure(): share_hint_chars must be 0-500");
        }
        return NULL;
    }
    config.caption_max_chars = PyLong_AsSsize_t(caption_max);
    config.meta_max_chars = PyLong_AsSsize_t(meta_max);
    config.promo_max_chars = PyLong_AsSsize_t(promo_max);
    if (PyErr_Occurred()) {
        return NULL;
    }
    config.rule_attribute_name_count = 0;
    PyObject *name_iterator = PyObject_GetIter(config.rule_attribute_names);
    if (name_iterator == NULL) {
        return NULL;
    }
    PyObject *attribute_name;
    while ((attribute_name = PyIter_Next(name_iterator)) != NULL) {
        /* the set holds a reference to each name, and config holds the set */
        const char *utf8 = PyUnicode_Check(attribute_name) ? PyUnicode_AsUTF8(attribute_name)
                                                           : NULL;
        Py_DECREF(attribute_name);
        if (utf8 == NULL ||
            config.rule_attribute_name_count == RULE_ATTRIBUTE_NAMES_CAPACITY) {
            Py_DECREF(name_iterator);
            PyErr_Clear();
            PyErr_SetString(PyExc_TypeError, "configure(): rule_attribute_names must be a "
                                             "few str");
            return NULL;
        }
        config.rule_attribute_name_list[config.rule_attribute_name_count++] = utf8;
    }
    Py_DECREF(name_iterator);
    if (PyErr_Occurred()) {
        return NULL;
    }
    class_cache_clear(); /* class rules may have changed */
    for (int i = 0; i < TAG_CACHE_SIZE; i++) { /* tag rules may have changed */
        PyMem_Free(tag_cache[i].name);
        tag_cache[i].name = NULL;
        Py_CLEAR(tag_cache[i].tag);
    }
    configured = 1;
    Py_RETURN_NONE;
}

static void *capi_function(PyObject *capi, const char *name)
{
    PyObject *capsule = PyDict_GetItemString(capi, name);
    if (capsule == NULL || !PyCapsule_CheckExact(capsule)) {
        PyErr_Format(PyExc_ImportError, "lxml.etree has no C function %s", name);
        return NULL;
    }
    return PyCapsule_GetPointer(capsule, PyCapsule_GetName(capsule));
}

static int import_lxml(void)
{
    PyObject *etree = PyImport_ImportModule("lxml.etree");
    if (etree == NULL) {
        return -1;
    }
    PyObject *capi = PyObject_GetAttrString(etree, "__pyx_capi__");
    PyObject *element_type = PyObject_GetAttrString(etree, "_Element");
    Py_DECREF(etree);
    int status = -1;
    if (capi == NULL || element_type == NULL || !PyDict_Check(capi) ||
        !PyType_Check(element_type)) {
        if (!PyErr_Occurred()) {
            PyErr_SetString(PyExc_ImportError, "lxml.etree offers no public C API");
        }
        goto done;
    }
    if ((lx_element_factory = capi_function(capi, "elementFactory")) == NULL ||
        (lx_text_of = capi_function(capi, "textOf")) == NULL ||
        (lx_tail_of = capi_function(capi, "tailOf")) == NULL ||
        (lx_attribute_value = capi_function(capi, "attributeValue")) == NULL ||
        (lx_attribute_value_from_ns_name = capi_function(capi, "attributeValueFromNsName")) ==
            NULL ||
        (lx_find_child = capi_function(capi, "findChild")) == NULL ||
        (lx_next_element = capi_function(capi, "nextElement")) == NULL) {
        goto done;
    }
    lx_element_type = (PyTypeObject *)Py_NewRef(element_type);
    status = 0;
done:
    Py_XDECREF(capi);
    Py_XDECREF(element_type);
    return status;
}

static PyMethodDef speedups_methods[] = {
    {"walk_tree", walk_tree, METH_VARARGS,
     "walk_tree(walk, root, deadline) -> None, or the event count when the deadline passed."},
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(**rules_and_callbacks): hand over transforms.body's rules and callbacks."},
    {"normalise_text", normalise_text, METH_O,
     "normalise_text(text) -> text in NFC, zero-width characters removed, whitespace runs to "
     "one space, stripped."},
    {"read_header", read_header, METH_VARARGS,
     "read_header(raw, start) -> (source_format, front_matter, title, url, date, body_start) "
     "read from raw[start:] as transforms.envelope.parse_envelope reads it, or None when "
     "parse_envelope must read it."},
    {"crowded_tag", crowded_tag, METH_VARARGS,
     "crowded_tag(markup, limit) -> the attribute count of the first tag in markup with more "
     "than limit attributes, or 0 (see _markup_scan.c)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "transforms._speedups",
    .m_doc = "The document-order walk of transforms.body over lxml's C tree.",
    .m_size = -1,
    .m_methods = speedups_methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    if (import_lxml() < 0) {
        return NULL;
    }
    PyObject *unicodedata = PyImport_ImportModule("unicodedata");
    if (unicodedata == NULL) {
        return NULL;
    }
    unicodedata_normalize = PyObject_GetAttrString(unicodedata, "normalize");
    Py_DECREF(unicodedata);
    str_nfc = PyUnicode_InternFromString("NFC");
    if (unicodedata_normalize == NULL || str_nfc == NULL) {
        return NULL;
    }
    config.str_fragments = PyUnicode_InternFromString("fragments");
    config.str_container = PyUnicode_InternFromString("container");
    config.str_share_links = PyUnicode_InternFromString("share_links");
    config.str_empty = PyUnicode_InternFromString("");
    config.str_space = PyUnicode_InternFromString(" ");
    config.str_paragraphs = PyUnicode_InternFromString("paragraphs");
    config.str_footer_reason = PyUnicode_InternFromString("footer_reason");
    config.str_image_since_last_block = PyUnicode_InternFromString("image_since_last_block");
    config.str_headings = PyUnicode_InternFromString("headings");
    config.str_captions = PyUnicode_InternFromString("captions");
    config.str_meta_blocks = PyUnicode_InternFromString("meta_blocks");
    config.str_discarded = PyUnicode_InternFromString("discarded");
    config.str_image_urls = PyUnicode_InternFromString("image_urls");
    if (config.str_paragraphs == NULL || config.str_footer_reason == NULL ||
        config.str_image_since_last_block == NULL || config.str_headings == NULL ||
        config.str_image_urls == NULL ||
        config.str_captions == NULL || config.str_meta_blocks == NULL ||
        config.str_discarded == NULL) {
        return NULL;
    }
    if (config.str_fragments == NULL || config.str_container == NULL ||
        config.str_share_links == NULL || config.str_empty == NULL || config.str_space == NULL) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    size_t range_count = sizeof(nfc_inert_ranges) / sizeof(nfc_inert_ranges[0]);
    PyObject *ranges = PyTuple_New((Py_ssize_t)range_count);
    for (size_t i = 0; ranges != NULL && i < range_count; i++) {
        PyObject *range = Py_BuildValue("(II)", nfc_inert_ranges[i][0], nfc_inert_ranges[i][1]);
        if (range == NULL) {
            Py_CLEAR(ranges);
            break;
        }
        PyTuple_SET_ITEM(ranges, (Py_ssize_t)i, range);
    }
    if (ranges == NULL || PyModule_AddObject(module, "NFC_INERT_RANGES", ranges) < 0) {
        Py_XDECREF(ranges);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
