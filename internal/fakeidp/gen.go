package fakeidp

import (
	"fmt"
	"strings"
	"time"
)

// The deterministic data generators: the same seed and index always give the same entity, so a
// fake with 100,000 users is reproducible and cheap to build (no randomness, no I/O).

// Base62 is the alphabet of Clerk-like ids.
const Base62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"

// Epoch is the creation time of the first generated entity.
var Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)

// Mix is splitmix64: a cheap, well-spread hash of x.
func Mix(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// SortableID returns prefix + n characters of alphabet: a fixed-width encoding of i first (so ids
// sort in creation order, like KSUIDs) then pseudo-random characters derived from seed and i.
func SortableID(prefix, alphabet string, n int, seed uint64, i int) string {
	const head = 8
	var b strings.Builder
	b.Grow(len(prefix) + n)
	b.WriteString(prefix)
	digits := make([]byte, head)
	v := uint64(i)
	for k := head - 1; k >= 0; k-- {
		digits[k] = alphabet[v%uint64(len(alphabet))]
		v /= uint64(len(alphabet))
	}
	b.Write(digits)
	r := Mix(seed ^ uint64(i)*0x100000001b3)
	for k := head; k < n; k++ {
		if k%10 == 0 {
			r = Mix(r)
		}
		b.WriteByte(alphabet[r%uint64(len(alphabet))])
		r /= uint64(len(alphabet))
	}
	return b.String()
}

// UUID returns a deterministic RFC 4122 version-4-shaped UUID for the i-th entity of kind.
func UUID(seed uint64, kind string, i int) string {
	h := seed
	for _, c := range kind {
		h = Mix(h ^ uint64(c))
	}
	a, b := Mix(h^uint64(i)), Mix(h^uint64(i)^0xabcdef)
	return fmt.Sprintf("%08x-%04x-4%03x-%04x-%012x", uint32(a>>32), uint16(a>>16), uint16(a)&0xfff,
		(uint16(b>>48)&0x3fff)|0x8000, b&0xffffffffffff)
}

var firstNames = []string{"Ada", "Alan", "Barbara", "Claude", "Dennis", "Edsger", "Frances", "Grace",
	"Hedy", "Ivan", "John", "Katherine", "Leslie", "Margaret", "Niklaus", "Radia", "Shafi", "Tim",
	"Whitfield", "Xiao"}

var lastNames = []string{"Lovelace", "Turing", "Liskov", "Shannon", "Ritchie", "Dijkstra", "Allen",
	"Hopper", "Lamarr", "Sutherland", "McCarthy", "Johnson", "Lamport", "Hamilton", "Wirth", "Perlman",
	"Goldwasser", "Berners-Lee", "Diffie", "Wang"}

var orgWords = []string{"Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka",
	"Cyberdyne", "Tyrell", "Soylent", "Aperture", "Massive", "Vandelay", "Pied Piper", "Dunder"}

// Person is the generated identity behind a user of any provider.
type Person struct {
	First, Last, Username, Email string
	Created                      time.Time
}

// NewPerson generates the i-th person of seed.
func NewPerson(seed uint64, i int) Person {
	r := Mix(seed ^ uint64(i))
	first := firstNames[r%uint64(len(firstNames))]
	last := lastNames[(r>>16)%uint64(len(lastNames))]
	user := strings.ToLower(strings.ReplaceAll(first+"."+last, "-", "")) + fmt.Sprint(i)
	return Person{
		First:    first,
		Last:     last,
		Username: user,
		Email:    user + "@example.com",
		Created:  Epoch.Add(time.Duration(i) * time.Minute),
	}
}

// OrgName generates the i-th organization's name and slug.
func OrgName(i int) (name, slug string) {
	name = fmt.Sprintf("%s %d", orgWords[i%len(orgWords)], i)
	return name, strings.ToLower(strings.ReplaceAll(name, " ", "-"))
}
