// RUN: autodiff
// The gradient of a while loop with a run-time trip count (%n). The forward loop is taped
// in place: it carries an iteration count and one tensor list per loop value, onto which
// each iteration pushes the values it starts with. The backward loop runs the count down
// to 0, reads that iteration's values back with list_get, recomputes the body, and carries
// the loop value's cotangent and the sum of the cotangents of %w, which the body captures
// (starting from zero).
func.func @main(%x: tensor<2xf64>, %w: tensor<f64>, %n: tensor<i64>) -> tensor<f64> {
  %zero = "gj.constant"() {value = dense<0> : tensor<i64>} : () -> tensor<i64>
  %r:2 = "gj.while"(%zero, %x) ({
  ^bb0(%i: tensor<i64>, %a: tensor<2xf64>):
    %go = "gj.less"(%i, %n) : (tensor<i64>, tensor<i64>) -> tensor<i1>
    "gj.condition"(%go) : (tensor<i1>) -> ()
  }, {
  ^bb0(%i2: tensor<i64>, %a2: tensor<2xf64>):
    %one = "gj.constant"() {value = dense<1> : tensor<i64>} : () -> tensor<i64>
    %i3 = "gj.add"(%i2, %one) : (tensor<i64>, tensor<i64>) -> tensor<i64>
    %m = "gj.mul"(%a2, %w) : (tensor<2xf64>, tensor<f64>) -> tensor<2xf64>
    %a3 = "gj.tanh"(%m) : (tensor<2xf64>) -> tensor<2xf64>
    "gj.yield"(%i3, %a3) : (tensor<i64>, tensor<2xf64>) -> ()
  }) : (tensor<i64>, tensor<2xf64>) -> (tensor<i64>, tensor<2xf64>)
  %s = "gj.reduce_sum"(%r#1) {axes = [0], keepdims = false} : (tensor<2xf64>) -> tensor<f64>
  func.return %s : tensor<f64>
}
// The forward loop, augmented: (i, a, count, tape of i, tape of a).
// CHECK:      = "gj.constant"() {value = dense<0> : tensor<i64>}
// CHECK-NEXT: [[COUNT0:%[0-9]+]] = "gj.constant"() {value = dense<0> : tensor<i64>}
// CHECK-NEXT: "gj.list_new"(%{{[0-9]+}}) : (tensor<i64>) -> !gj.list<tensor<i64>>
// CHECK-NEXT: [[TAPE0:%[0-9]+]] = "gj.list_new"(%arg0) : (tensor<2xf64>) -> !gj.list<tensor<2xf64>>
// CHECK-NEXT: [[F:%[0-9]+]]:5 = "gj.while"(%{{[0-9]+}}, %arg0, [[COUNT0]], %{{[0-9]+}}, [[TAPE0]]) ({
// CHECK:      "gj.condition"
// CHECK-NEXT: }, {
// CHECK-NEXT: ^bb0(%{{arg[0-9]+}}: tensor<i64>, [[A:%arg[0-9]+]]: tensor<2xf64>, [[C:%arg[0-9]+]]: tensor<i64>, %{{arg[0-9]+}}: !gj.list<tensor<i64>>, [[TAPE:%arg[0-9]+]]: !gj.list<tensor<2xf64>>):
// CHECK:        [[A2:%[0-9]+]] = "gj.tanh"
// CHECK:        [[C2:%[0-9]+]] = "gj.add"([[C]], %{{[0-9]+}}
// CHECK:        [[TAPE2:%[0-9]+]] = "gj.list_push"([[TAPE]], [[A]]
// CHECK-NEXT:   "gj.yield"(%{{[0-9]+}}, [[A2]], [[C2]], %{{[0-9]+}}, [[TAPE2]]
// CHECK-NEXT: }) {taped = 2} : (tensor<i64>, tensor<2xf64>, tensor<i64>, !gj.list<tensor<i64>>, !gj.list<tensor<2xf64>>) -> (tensor<i64>, tensor<2xf64>, tensor<i64>, !gj.list<tensor<i64>>, !gj.list<tensor<2xf64>>)
// CHECK:      [[S:%[0-9]+]] = "gj.reduce_sum"([[F]]#1
// The backward loop: (count, cotangent of a, cotangent of %w).
// CHECK:      [[DA0:%[0-9]+]] = "gj.broadcast_like"(%{{[0-9]+}}, [[F]]#1
// CHECK:      [[DW0:%[0-9]+]] = "gj.broadcast_like"(%{{[0-9]+}}, %arg1
// CHECK-NEXT: [[B:%[0-9]+]]:3 = "gj.while"([[F]]#2, [[DA0]], [[DW0]]) ({
// CHECK-NEXT: ^bb0([[K:%arg[0-9]+]]: tensor<i64>,
// CHECK:        [[MORE:%[0-9]+]] = "gj.greater"([[K]], %{{[0-9]+}}
// CHECK-NEXT:   "gj.condition"([[MORE]]
// CHECK-NEXT: }, {
// CHECK-NEXT: ^bb0([[K2:%arg[0-9]+]]: tensor<i64>, [[DA:%arg[0-9]+]]: tensor<2xf64>, [[DW:%arg[0-9]+]]: tensor<f64>):
// CHECK:        [[K3:%[0-9]+]] = "gj.sub"([[K2]], %{{[0-9]+}}
// CHECK:        [[AK:%[0-9]+]] = "gj.list_get"([[F]]#4, [[K3]]) : (!gj.list<tensor<2xf64>>, tensor<i64>) -> tensor<2xf64>
// CHECK-NEXT:   [[M:%[0-9]+]] = "gj.mul"([[AK]], %arg1
// CHECK-NEXT:   [[T:%[0-9]+]] = "gj.tanh"([[M]]
// CHECK-NEXT:   [[DM:%[0-9]+]] = "gj.tanh_grad"([[DA]], [[T]]
// CHECK-NEXT:   [[DA2:%[0-9]+]] = "gj.mul"([[DM]], %arg1
// CHECK-NEXT:   [[DWM:%[0-9]+]] = "gj.mul"([[DM]], [[AK]]
// CHECK-NEXT:   [[DWI:%[0-9]+]] = "gj.sum_to"([[DWM]], %arg1
// CHECK-NEXT:   [[DW2:%[0-9]+]] = "gj.add"([[DW]], [[DWI]]
// CHECK-NEXT:   "gj.yield"([[K3]], [[DA2]], [[DW2]]
// CHECK-NEXT: }) : (tensor<i64>, tensor<2xf64>, tensor<f64>) -> (tensor<i64>, tensor<2xf64>, tensor<f64>)
// CHECK-NEXT: func.return [[S]], [[B]]#1, [[B]]#2 : tensor<f64>, tensor<2xf64>, tensor<f64>
