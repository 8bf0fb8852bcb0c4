package mss

import (
	"fmt"
	"strings"
)

// Render prints a table the way `nft list table inet vpblu` does, or
// "(no table)" when exists is false.
func Render(s State, exists bool) string {
	if !exists {
		return "(no table)\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "table inet %s {\n", TableName)
	if s.Hook != "" {
		fmt.Fprintf(&b, "\tchain %s {\n", ChainName)
		fmt.Fprintf(&b, "\t\ttype filter hook %s priority %s; policy accept;\n", s.Hook, priorityName(s.Priority))
		for _, r := range s.Rules {
			if r.Family != IPv4 && r.Family != IPv6 {
				b.WriteString("\t\t(a rule vpblu did not write)\n")
				continue
			}
			fmt.Fprintf(&b, "\t\toifname %q meta nfproto %s tcp flags syn / syn,rst tcp option maxseg size > %d tcp option maxseg size set %d\n",
				r.Interfaces, r.Family, r.MSS, r.MSS)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

func priorityName(p int) string {
	if p == ChainPriority {
		return "mangle"
	}
	return fmt.Sprint(p)
}
