package helm_test

import (
	"bytes"
	"net"
	"strconv"
	"testing"

	"golang.org/x/crypto/bcrypt"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// The chart turns the dashboard on with a random password whose bcrypt
// hash is all the controller mounts; the dashboard Service reaches the
// port the controller serves it on and keeps a browser on one replica.
func TestDashboardLoginAndService(t *testing.T) {
	r := render(t, "")
	dep := one[*appsv1.Deployment](t, r, controllerName)
	ctl := controllerContainer(t, dep)
	sec := one[*corev1.Secret](t, r, "vpblu-dashboard")
	svc := one[*corev1.Service](t, r, "vpblu-dashboard")
	cf := func(name string) string { v, _ := flagValue(ctl.Args, name); return v }

	password, hash := sec.Data["password"], sec.Data["htpasswd"]
	if len(password) < 20 {
		t.Errorf("password %q: want a long random one", password)
	}
	user, h, _ := bytes.Cut(hash, []byte(":"))
	if err := bcrypt.CompareHashAndPassword(h, password); err != nil || string(user) != "admin" {
		t.Errorf("htpasswd %q does not hold the password's bcrypt hash (user %q): %v", hash, user, err)
	}
	var vol corev1.Volume
	for _, v := range dep.Spec.Template.Spec.Volumes {
		if v.Secret != nil && v.Secret.SecretName == sec.Name {
			vol = v
		}
	}
	_, port, _ := net.SplitHostPort(cf("dashboard-addr"))
	runChecks(t, []check{
		{"the controller mounts only the hash", len(vol.Secret.Items) == 1 && vol.Secret.Items[0].Key == "htpasswd", true},
		{"--dashboard-password-file is the mounted hash", mountedAt(ctl, vol.Name, vol.Secret.Items[0].Path), cf("dashboard-password-file")},
		{"the Service reaches the dashboard port", svc.Spec.Ports[0].TargetPort.String() + "=" + strconv.Itoa(int(containerPort(ctl, svc.Spec.Ports[0].TargetPort.String()))), "dashboard=" + port},
		{"the Service selects the controller pods", svc.Spec.Selector, dep.Spec.Selector.MatchLabels},
		{"a browser stays on the replica holding its session", svc.Spec.SessionAffinity, corev1.ServiceAffinityClientIP},
	})

	// Two installs get different passwords.
	if other := one[*corev1.Secret](t, render(t, ""), "vpblu-dashboard"); string(other.Data["password"]) == string(password) {
		t.Error("two renders made the same password")
	}
}

func TestDashboardOff(t *testing.T) {
	r := render(t, "dashboard: {enabled: false}")
	ctl := controllerContainer(t, one[*appsv1.Deployment](t, r, controllerName))
	if _, ok := flagValue(ctl.Args, "dashboard-password-file"); ok {
		t.Error("--dashboard-password-file is set with the dashboard off")
	}
	for _, s := range all[*corev1.Secret](r) {
		if s.Name == "vpblu-dashboard" {
			t.Error("the dashboard Secret is rendered with the dashboard off")
		}
	}
}
